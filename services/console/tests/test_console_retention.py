"""Retention of the access and audit logs: entries older than their setting are deleted, a
batch per transaction, by a supervised worker that /readyz reports on."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from rapport_console.audit import retention
from rapport_console.audit.models import AccessEntry, Action, AuditEntry
from rapport_console.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_console.settings import Settings
from rapport_console.testing import fake_settings
from rapport_events.base import utcnow
from rapport_events.db import (
    SessionFactory,
    create_engine,
    read_transaction,
    session_factory,
    transaction,
)
from rapport_events.migrations import upgrade
from rapport_events.testing.harness import poll_until

from .conftest import anonymous_client

# On a real database, SQLite and PostgreSQL: not a unit test.
pytestmark = pytest.mark.integration

NOW = utcnow()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, VERSION_TABLE)
    yield engine
    await engine.dispose()


async def add_entries(sessions: SessionFactory, *ages_in_days: int) -> None:
    """One access and one audit entry of each age, named after it."""
    async with transaction(sessions) as session:
        for days in ages_in_days:
            at = NOW - timedelta(days=days)
            session.add(
                AccessEntry(
                    operator="ada",
                    role="support",
                    customer_id=f"c-{days}",
                    page="customer-360",
                    viewed_at=at,
                )
            )
            session.add(
                AuditEntry(
                    operator="ada",
                    role="admin",
                    action=Action.partner_delete,
                    target=f"p-{days}",
                    outcome="done",
                    status=303,
                    at=at,
                )
            )


async def kept(sessions: SessionFactory) -> tuple[list[str], list[str]]:
    """The customers of the access log's entries and the targets of the audit log's."""
    async with read_transaction(sessions) as session:
        views = (await session.exec(select(AccessEntry).order_by(col(AccessEntry.id)))).all()
        actions = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    return [v.customer_id for v in views], [a.target for a in actions]


class TestSettings:
    def test_both_logs_keep_a_year_unless_told(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CONSOLE_ACCESS_LOG_RETENTION_DAYS", "30")
        settings = Settings(environment="development")

        days = {kept.table.name: kept.days for kept in retention.logs_of(settings)}

        assert days == {"console_access_log": 30, "console_audit_log": 365}

    def test_a_retention_under_a_day_is_refused(self) -> None:
        with pytest.raises(ValueError, match="audit_retention_days"):
            Settings(environment="development", audit_retention_days=0)


class TestPurge:
    async def test_entries_past_each_logs_retention_go_and_the_rest_stay(
        self, engine: AsyncEngine
    ) -> None:
        sessions = session_factory(engine)
        await add_entries(sessions, 400, 100, 20, 0)
        settings = fake_settings(access_log_retention_days=30, audit_retention_days=365)

        gone = await retention.purge(sessions, settings, now=NOW)

        assert gone == {"console_access_log": 2, "console_audit_log": 1}
        assert await kept(sessions) == (["c-20", "c-0"], ["p-100", "p-20", "p-0"])

    async def test_many_entries_go_a_batch_per_transaction(self, engine: AsyncEngine) -> None:
        sessions = session_factory(engine)
        await add_entries(sessions, *range(366, 371), 1)
        log = retention.logs_of(fake_settings())[1]

        async with transaction(sessions) as session:
            first = await retention.purge_batch(session, log, NOW - timedelta(days=365), 2)
        gone = await retention.purge_log(sessions, log, NOW, batch=2)

        assert (first, gone) == (2, 3)
        async with read_transaction(sessions) as session:
            left = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
        assert left == 1


class TestWorker:
    @pytest.fixture
    async def console(self, database_url: str) -> AsyncIterator[FastAPI]:
        """The console on this test's database, SQLite or PostgreSQL."""
        app = create_app(fake_settings(database_url=database_url))
        async with app.router.lifespan_context(app):
            yield app

    async def test_the_running_console_deletes_old_entries(self, console: FastAPI) -> None:
        sessions = console.state.sessionmaker
        await add_entries(sessions, 500, 1)

        (worker,) = console.state.workers
        worker.wake()

        async def purged() -> bool:
            return await kept(sessions) == (["c-1"], ["p-1"])

        assert await poll_until(purged)

    async def test_readyz_says_when_the_worker_is_stopped(self, console: FastAPI) -> None:
        async with anonymous_client(console) as client:
            ready = await client.get("/readyz")
            for worker in console.state.workers:
                await worker.stop()
            stopped = await client.get("/readyz")

        assert ready.json()["checks"]["console-log-retention"] == "ok"
        assert stopped.status_code == 503
        assert stopped.json()["checks"]["console-log-retention"] == "stopped"
