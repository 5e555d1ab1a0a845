"""Print the customer event log: offset, key, CloudEvents headers and JSON value of each record.

Usage (`make tail ARGS="..."` runs the same):

    python tools/tail_events.py                  # the whole log, then exit
    python tools/tail_events.py --follow         # the whole log, then wait for new records
    python tools/tail_events.py --limit 10       # stop after 10 records
    python tools/tail_events.py --json           # one JSON object per record, like `kcat -J`

It uses librdkafka (confluent-kafka) and no Rapport code: any Kafka client can read the
log. Partitions are assigned, not joined as a group, so nothing is committed and the
first record shows at once. The end of the log is where no record arrives for
`--idle-exit` seconds: the dev broker reports end offsets that cannot be trusted.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

DEFAULT_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
DEFAULT_TOPIC = os.environ.get("KAFKA_TOPIC", "rapport.customer-events")


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")


def record(message: Any) -> dict[str, Any]:
    """One Kafka record as a dict: where it is, its key, headers and decoded JSON value."""
    raw = message.value() or b""
    value: Any
    try:
        value = json.loads(raw)
    except ValueError:
        value = _text(raw)
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": _text(message.key()),
        "headers": {name: _text(data) for name, data in message.headers() or []},
        "value": value,
    }


def render(entry: dict[str, Any]) -> str:
    """A record for a person: a heading line, the CloudEvents headers, the indented value."""
    headers = entry["headers"]
    lines = [
        f"{entry['topic']} partition {entry['partition']} offset {entry['offset']}"
        f"  key {entry['key']}"
    ]
    lines += [f"  {name}: {value}" for name, value in headers.items()]
    value = entry["value"]
    body = json.dumps(value, indent=2, ensure_ascii=False) if not isinstance(value, str) else value
    lines += ["  " + line for line in body.splitlines()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print the customer event log (offset, key, CloudEvents headers, value)."
    )
    parser.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="%(default)s")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="%(default)s")
    parser.add_argument(
        "--follow", "-f", action="store_true", help="keep waiting for new records (Ctrl-C stops)"
    )
    parser.add_argument("--limit", "-n", type=int, default=0, help="stop after N records")
    parser.add_argument(
        "--from-beginning",
        dest="from_beginning",
        action="store_true",
        default=True,
        help="start at the first record of each partition (the default)",
    )
    parser.add_argument(
        "--new-only",
        dest="from_beginning",
        action="store_false",
        help="print only records that arrive after the start (implies --follow)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=2.0,
        help="seconds without a record that mean the end of the log (%(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.from_beginning:
        args.follow = True
    return args


def open_consumer(args: argparse.Namespace) -> Consumer:
    """A consumer assigned every partition of the topic at its first offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "rapport-tail",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=10)
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        consumer.close()
        reason = topic.error if topic is not None and topic.error else "no such topic"
        raise SystemExit(f"cannot read {args.topic} on {args.bootstrap}: {reason}")
    partitions = sorted(topic.partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer


def skip_to_end(consumer: Consumer, idle_s: float) -> None:
    """Read past what the log holds now (end offsets of the dev broker are not trusted)."""
    last_seen = time.monotonic()
    while time.monotonic() - last_seen < idle_s:
        if consumer.poll(0.2) is not None:
            last_seen = time.monotonic()


def tail(args: argparse.Namespace) -> int:
    """Print records until the end of the log, the limit, or Ctrl-C; the number printed."""
    consumer = open_consumer(args)
    printed = 0
    try:
        if not args.from_beginning:
            skip_to_end(consumer, args.idle_exit)
        last_seen = time.monotonic()
        while args.follow or time.monotonic() - last_seen < args.idle_exit:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().fatal():
                    raise KafkaException(message.error())
                continue
            last_seen = time.monotonic()
            entry = record(message)
            print(json.dumps(entry, ensure_ascii=False) if args.json else render(entry), flush=True)
            printed += 1
            if args.limit and printed >= args.limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return printed


def main() -> int:
    tail(parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
