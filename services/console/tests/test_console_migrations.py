"""The console's migrations build its models' schema (the access log, the operators, the
audit log), on SQLite and PostgreSQL, and both logs read back what was recorded."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import rapport_console.tables  # noqa: F401  (every domain's tables on the metadata)
from rapport_console.audit import access_log
from rapport_console.audit import store as audit_log
from rapport_console.audit.models import Action
from rapport_console.main import MIGRATIONS, VERSION_TABLE
from rapport_console.operators.models import Operator
from rapport_console.roles import Role
from rapport_events.db import create_engine, read_transaction, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.testing.migrations import schema_differences

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, VERSION_TABLE)
    yield engine
    await engine.dispose()


async def test_the_migrated_schema_is_the_models(engine: AsyncEngine) -> None:
    metadata = MetaData()
    for table in SQLModel.metadata.tables.values():
        if table.name.startswith("console_"):
            table.to_metadata(metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(schema_differences, metadata, VERSION_TABLE)

    assert differences == [], differences


async def test_the_access_log_reads_newest_first(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        access_log.record(session, "ada", "support", "c-1", "customer-360")
        access_log.record(session, "grace", "privacy", "c-1", "export")
        access_log.record(session, "ada", "support", "c-2", "search")

    async with read_transaction(sessions) as session:
        of_c1 = await access_log.of_customer(session, "c-1")
        of_ada = await access_log.recent(session, "ada")

    assert [(e.operator, e.page) for e in of_c1] == [("grace", "export"), ("ada", "customer-360")]
    assert [e.customer_id for e in of_ada] == ["c-2", "c-1"]


async def test_the_audit_log_reads_newest_first_by_operator_action_and_cursor(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    admin, officer = Operator("ada", Role.admin), Operator("grace", Role.privacy)
    async with transaction(sessions) as session:
        audit_log.record(session, admin, Action.partner_delete, "p-1", 303)
        audit_log.record(session, officer, Action.customer_erase, "c-1", 200)
        audit_log.record(session, admin, Action.operator_disable, "alan", 400, "your own account")
        audit_log.record(session, admin, Action.partner_delete, "p-2", 503)

    async with read_transaction(sessions) as session:
        every = await audit_log.recent(session)
        of_ada = await audit_log.recent(session, "ada")
        deletions = await audit_log.recent(session, action=Action.partner_delete)
        older = await audit_log.recent(session, "ada", before=every[0].id, limit=1)

    assert [(e.target, e.outcome) for e in every] == [
        ("p-2", "failed"),
        ("alan", "refused"),
        ("c-1", "done"),
        ("p-1", "done"),
    ]
    assert [e.target for e in of_ada] == ["p-2", "alan", "p-1"]
    assert [e.target for e in deletions] == ["p-2", "p-1"]
    assert [(e.target, e.detail, e.status) for e in older] == [("alan", "your own account", 400)]
