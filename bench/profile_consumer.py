"""Profile's consumer without a broker: N interaction.tracked events through the runner.

`uv run --frozen python bench/profile_consumer.py [N] [records per transaction]` feeds
fake records to `ConsumerRunner._handle_records` with profile's HANDLERS on a fresh
SQLite file, in slices of what one fetch brings (500), and prints events/s of wall
clock and per CPU-second of the process (steadier on a shared machine). Every event
goes through the inbox, the handlers and a commit, as in a running service.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import TopicPartition

from rapport_events.codec import Envelope, encode
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.types import InteractionTracked
from rapport_profile.handlers import HANDLERS
from rapport_profile.main import MIGRATIONS

TOPIC = "rapport.bench-profile"
FETCH = 500
CUSTOMERS = 500


def records(count: int) -> list[FakeRecord]:
    """`count` page views spread over CUSTOMERS customers, as one partition's records."""
    out = []
    for n in range(count):
        event = InteractionTracked(
            customer_id=f"c-{n % CUSTOMERS}", kind="page", name=f"page {n}", url="/x"
        )
        message = encode(Envelope(data=event, source="/bench"))
        out.append(FakeRecord(TOPIC, 0, n, message.key, message.value, list(message.headers)))
    return out


async def measure(count: int, per_transaction: int) -> tuple[float, float]:
    """Events per second of wall clock and per second of this process's CPU."""
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'profile.db'}")
        await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
        settings = KafkaSettings(topic=TOPIC, consumer_transaction_max_records=per_transaction)
        runner = ConsumerRunner(
            service="profile",
            settings=settings,
            session_factory=session_factory(engine),
            handlers=HANDLERS,
            producer=FakeProducer(),  # type: ignore[arg-type]
        )
        todo = records(count)
        partition = TopicPartition(TOPIC, 0)
        started, cpu = time.perf_counter(), time.process_time()
        # As ConsumerRunner._run slices a fetch.
        for fetch in range(0, count, FETCH):
            fetched = todo[fetch : fetch + FETCH]
            for first in range(0, len(fetched), per_transaction):
                await runner._handle_records(partition, fetched[first : first + per_transaction])  # type: ignore[arg-type]
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await engine.dispose()
        assert runner.applied == count, runner.applied
        return count / elapsed, count / cpu


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    sizes = [int(sys.argv[2])] if len(sys.argv) > 2 else [50, 500]
    for size in sizes:
        wall, cpu = asyncio.run(measure(count, size))
        print(
            f"{count} interaction.tracked, {size} per transaction: "
            f"{wall:,.0f} events/s ({cpu:,.0f} per CPU-second)"
        )


if __name__ == "__main__":
    main()
