"""Helpers for tests of batch handlers: feed the same records one by one and in runs, and
count the SQL statements a run costs."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.consumer import ConsumerRunner


@contextmanager
def statements_on(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement sent on `engine` inside the block, in order."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", count)


async def feed_both_ways(
    one_by_one: ConsumerRunner,
    together: ConsumerRunner,
    records: Sequence[Any],
    partition: TopicPartition,
    run_size: int = 100,
) -> None:
    """The same records to two runners: each on its own, and as fetches of `run_size`."""
    for record in records:
        await one_by_one._handle_record(record)
    for first in range(0, len(records), run_size):
        await together._handle_records(partition, list(records[first : first + run_size]))
