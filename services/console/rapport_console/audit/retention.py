"""Retention of the console's two logs: entries older than their setting
(`CONSOLE_AUDIT_RETENTION_DAYS`, `CONSOLE_ACCESS_LOG_RETENTION_DAYS`) are deleted by a
supervised worker, a batch per transaction, and /readyz says when it is not working.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.audit.models import AccessEntry, AuditEntry
from rapport_console.settings import Settings
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.supervisor import Periodic, RestartPolicy
from rapport_events.tracing import untraced

log = logging.getLogger(__name__)
# Rows deleted per transaction: on SQLite a purge holds the only write lock while it runs,
# and the pages that record a view wait behind it.
PURGE_BATCH = 1000
# Entries expire by the day: looking once an hour is often enough.
INTERVAL_S = 3600.0
ACCESS_LOG = AccessEntry.__table__  # type: ignore[attr-defined]
AUDIT_LOG = AuditEntry.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Kept:
    """One log: its table, the column of an entry's time, and how many days it keeps one."""

    table: Any
    time_column: str
    days: int


def logs_of(settings: Settings) -> list[Kept]:
    """The two logs with their retention."""
    return [
        Kept(ACCESS_LOG, "viewed_at", settings.access_log_retention_days),
        Kept(AUDIT_LOG, "at", settings.audit_retention_days),
    ]


async def purge_batch(session: AsyncSession, kept: Kept, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the log's entries from before `cutoff`; how many went."""
    table = kept.table
    old = select(table.c.id).where(table.c[kept.time_column] < cutoff).limit(limit)
    result = await session.exec(delete(table).where(table.c.id.in_(old)))  # type: ignore[call-overload]
    return int(result.rowcount)


async def purge_log(
    sessions: SessionFactory, kept: Kept, now: datetime, *, batch: int = PURGE_BATCH
) -> int:
    """Delete the log's entries older than its retention, a batch per transaction."""
    cutoff = now - timedelta(days=kept.days)
    total = 0
    while True:
        async with transaction(sessions) as session:
            deleted = await purge_batch(session, kept, cutoff, batch)
        total += deleted
        if deleted < batch:
            return total


async def purge(
    sessions: SessionFactory, settings: Settings, now: datetime | None = None
) -> dict[str, int]:
    """Delete the entries of both logs past their retention; how many went, by table."""
    now = now or utcnow()
    gone: dict[str, int] = {}
    for kept in logs_of(settings):
        # A poll every hour with no request around it: no trace of its statements.
        with untraced():
            gone[kept.table.name] = await purge_log(sessions, kept, now)
        if gone[kept.table.name]:
            log.info(
                "deleted %d entries of %s past retention", gone[kept.table.name], kept.table.name
            )
    return gone


def retention_worker(sessions: SessionFactory, settings: Settings) -> Periodic:
    """The supervised worker that purges both logs every INTERVAL_S (not started)."""

    async def step() -> int:
        return sum((await purge(sessions, settings)).values())

    # It purges until a batch comes back short: a busy step needs no immediate repeat.
    return Periodic(
        "console-log-retention", step, INTERVAL_S, policy=RestartPolicy(), repeat_while_busy=False
    )
