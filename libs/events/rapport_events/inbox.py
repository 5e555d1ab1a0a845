"""The inbox: a consumer's record of the events it has applied, kept for a retention period."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import DateTime, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction

# Rows deleted per transaction: on SQLite a purge holds the only write lock while it runs.
PURGE_BATCH = 1000


class InboxEntry(SQLModel, table=True):
    """One applied event; the primary key makes a second application impossible."""

    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=128)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


async def claim(session: AsyncSession, consumer: str, event_id: str, event_type: str) -> bool:
    """Record the event in the caller's transaction; False when it was applied before.

    One statement: the insert does nothing when the row exists. On PostgreSQL a
    concurrent claim of the same id waits for the other transaction, then finds the
    row (False) or, if that one rolled back, takes the claim itself.
    """
    row = {
        "consumer": consumer,
        "event_id": event_id,
        "event_type": event_type,
        "processed_at": utcnow(),
    }
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(InboxEntry.__table__)  # type: ignore[attr-defined]
        .values(row)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    result = await session.exec(statement)  # type: ignore[call-overload]
    return bool(result.rowcount == 1)


# Rows per INSERT: four parameters each, well under SQLite's and PostgreSQL's limits.
CLAIM_CHUNK = 500


async def claim_all(
    session: AsyncSession, consumer: str, events: Sequence[tuple[str, str]]
) -> set[str]:
    """Record many `(event_id, event_type)` at once; returns the ids not applied before.

    One `INSERT … ON CONFLICT DO NOTHING RETURNING` per chunk: what it returns is what
    this transaction claimed. An id twice in `events` is claimed once.
    """
    claimed: set[str] = set()
    now = utcnow()
    unique = list(dict(events).items())
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = InboxEntry.__table__  # type: ignore[attr-defined]
    # One cached statement executed with many parameter sets: SQLAlchemy sends them as
    # multi-row VALUES batches ("insertmanyvalues") without compiling a statement per
    # size, and gathers what RETURNING gives back.
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(table.c.event_id)
    )
    for first in range(0, len(unique), CLAIM_CHUNK):
        rows = [
            {
                "consumer": consumer,
                "event_id": event_id,
                "event_type": event_type,
                "processed_at": now,
            }
            for event_id, event_type in unique[first : first + CLAIM_CHUNK]
        ]
        result = await session.exec(statement, params=rows)  # type: ignore[call-overload]
        claimed.update(result.scalars().all())
    return claimed


async def purge_older_than(
    session: AsyncSession, consumer: str, cutoff: datetime, *, limit: int = PURGE_BATCH
) -> int:
    """Delete up to `limit` of the consumer's entries processed before `cutoff`; how many went."""
    table = InboxEntry.__table__  # type: ignore[attr-defined]
    old = (
        select(table.c.event_id)
        .where(table.c.consumer == consumer, table.c.processed_at < cutoff)
        .limit(limit)
    )
    statement = delete(table).where(table.c.consumer == consumer, table.c.event_id.in_(old))
    result = await session.exec(statement)  # type: ignore[call-overload]
    return int(result.rowcount)


async def purge_expired(
    sessions: SessionFactory, consumer: str, retention_s: float, *, batch: int = PURGE_BATCH
) -> int:
    """Delete the consumer's entries older than `retention_s`, a batch per transaction.

    An id is only needed while its event can still be redelivered: keep it at least as
    long as the topic keeps the event (Kafka's default retention is 7 days).
    """
    cutoff = utcnow() - timedelta(seconds=retention_s)
    total = 0
    while True:
        async with transaction(sessions) as session:
            deleted = await purge_older_than(session, consumer, cutoff, limit=batch)
        total += deleted
        if deleted < batch:
            return total
