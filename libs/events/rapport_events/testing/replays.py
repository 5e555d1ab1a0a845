"""Helpers for replay tests: a log of customer events, the service's live consumer over it,
and a projection's rows in a form two databases can be compared in."""

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import select
from sqlmodel import SQLModel

from rapport_events.base import Event
from rapport_events.consumer import ConsumerRunner, HandlerMap
from rapport_events.db import create_engine, session_factory
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.replay import live_committed
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import until
from rapport_events.testing.streams import as_messages, customer_stream

# Set from the clock when a row is written, not from the event; and surrogate ids.
WRITTEN_AT = frozenset(
    {"updated_at", "entered_at", "erased_at", "merged_at", "id", "activity_id", "created_at"}
)


async def put_on_log(kafka: KafkaSettings, events: int, customers: int) -> list[Event]:
    """`events` customer events on the topic, as profile publishes them; returns them."""
    stream = list(customer_stream(events, customers))
    await ensure_topics(kafka, [kafka.topic])
    producer = create_producer(kafka, client_id="replay-test")
    await producer.start()
    try:
        sends = [
            await producer.send(kafka.topic, m.value, key=m.key, headers=m.headers)
            for m in as_messages(stream)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return stream


def handled(events: Collection[Event], handlers: HandlerMap) -> int:
    """How many of `events` a consumer with `handlers` applies (it skips the other types)."""
    return sum(1 for event in events if type(event) in handlers)


async def consume_live(
    url: str,
    service: str,
    kafka: KafkaSettings,
    handlers: HandlerMap,
    dependencies: Mapping[str, Any],
    events: int,
) -> None:
    """The service's own consumer, in its group, until it applied `events`; then it stops
    cleanly (committing its offsets), as a service stopped for a swap does."""
    engine = create_engine(url)
    producer = create_producer(kafka, client_id=f"{service}-test-live")
    await producer.start()
    runner = ConsumerRunner(
        service=service,
        settings=kafka,
        session_factory=session_factory(engine),
        handlers=handlers,
        producer=producer,
        dependencies=dependencies,
    )
    await runner.start()
    partitions = [TopicPartition(kafka.topic, n) for n in range(kafka.partitions)]

    async def all_committed() -> bool:
        # A commit that failed under load is kept for the next fetch with records, and
        # none comes: ask again, so the group's offsets cover the log as a replay assumes.
        await runner.commit_processed()
        committed = await live_committed(kafka, runner.group_id, partitions)
        return sum(committed.values()) >= events

    try:
        await until(lambda: runner.applied >= events, timeout=180, what="the live consumer")
        await until(all_committed, timeout=60, what="the live group's offsets", interval=0.2)
    finally:
        await runner.stop()
        await producer.stop()
        await engine.dispose()


async def projection_rows(url: str, tables: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
    """The rows of `tables`, without the columns stamped at write time, sorted."""
    engine = create_engine(url)
    found = {}
    try:
        async with engine.connect() as connection:
            for table in SQLModel.metadata.sorted_tables:
                if table.name not in tables:
                    continue
                columns = [c for c in table.columns if c.name not in WRITTEN_AT]
                rows = (await connection.execute(select(*columns))).all()
                found[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    finally:
        await engine.dispose()
    return found


async def count(url: str, statement: Any) -> int:
    """One scalar count on the database at `url`."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(statement) or 0)
    finally:
        await engine.dispose()
