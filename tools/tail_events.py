"""Print the customer event log as JSON lines, like `kcat -C -J`, with librdkafka.

Usage: python tools/tail_events.py [--bootstrap 127.0.0.1:9092] [--topic rapport.customer-events]
Reads every partition from the beginning and exits at the end of the log, or
follows it with --follow. It uses no Rapport code: any Kafka client can read the log.
"""

import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def record(message) -> dict:  # type: ignore[no-untyped-def]
    value = message.value() or b""
    try:
        payload = json.loads(value)
    except ValueError:
        payload = value.decode("utf-8", "replace")
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": (message.key() or b"").decode("utf-8", "replace"),
        "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in message.headers() or []},
        "payload": payload,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="rapport.customer-events")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--idle-exit", type=float, default=2.0, help="seconds without messages")
    args = parser.parse_args()
    # assign() instead of subscribe(): no group join, so the first record shows at once.
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "rapport-tail",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = sorted(metadata.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    last_seen = time.monotonic()
    try:
        while args.follow or time.monotonic() - last_seen < args.idle_exit:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            last_seen = time.monotonic()
            print(json.dumps(record(message)), flush=True)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
