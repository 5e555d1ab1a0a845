"""Shared tests of a service's migrations: the schema they build is the models', ids are 64-bit.

A service's test module subclasses `MigrationTests` and names its migrations; the test
bodies run on SQLite and PostgreSQL through the `database_url` fixture.
"""

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from rapport_events.base import utcnow
from rapport_events.db import create_engine
from rapport_events.migrations import downgrade, upgrade
from rapport_events.outbox import OutboxMessage

PAST_32_BITS = 2**31 + 5
EVENT_TABLES = ("outbox", "inbox")


def service_metadata(*prefixes: str) -> MetaData:
    """The tables a service's migrations create: its own (by name prefix), outbox and inbox.

    A test run imports every service's models onto the one SQLModel metadata.
    """
    metadata = MetaData()
    for table in SQLModel.metadata.tables.values():
        if table.name in EVENT_TABLES or table.name.startswith(prefixes):
            table.to_metadata(metadata)
    return metadata


def row_id_columns(metadata: MetaData) -> dict[str, list[str]]:
    """Every autoincrement id and every column pointing at one, {table: [column]}."""
    ids = {
        table.autoincrement_column
        for table in metadata.tables.values()
        if table.autoincrement_column is not None
    }
    found: dict[str, list[str]] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if column in ids or any(fk.column in ids for fk in column.foreign_keys):
                found.setdefault(table.name, []).append(column.name)
    return found


def schema_differences(connection: Connection, metadata: MetaData, version_table: str) -> list[Any]:
    """What alembic's autogenerate would change to make the database match `metadata`."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": version_table}
    )
    return list(compare_metadata(context, metadata))


async def postgres_types(engine: AsyncEngine, columns: dict[str, list[str]]) -> dict[str, str]:
    """`table.column` -> its type, and `table.column sequence` -> its sequence's type."""
    found: dict[str, str] = {}
    async with engine.connect() as connection:
        for table, names in columns.items():
            for name in names:
                found[f"{table}.{name}"] = (
                    await connection.execute(
                        text(
                            "SELECT data_type FROM information_schema.columns "
                            "WHERE table_name = :table AND column_name = :column"
                        ),
                        {"table": table, "column": name},
                    )
                ).scalar_one()
                sequence_type = (
                    await connection.execute(
                        text(
                            "SELECT data_type::text FROM pg_sequences WHERE "
                            "format('%I.%I', schemaname, sequencename)::regclass"
                            " = pg_get_serial_sequence(:table, :column)::regclass"
                        ),
                        {"table": table, "column": name},
                    )
                ).scalar()
                if sequence_type is not None:
                    found[f"{table}.{name} sequence"] = sequence_type
    return found


async def skip_ids_past(engine: AsyncEngine, table: str, value: int) -> None:
    """Move a PostgreSQL table's id sequence so its next id is `value + 1`."""
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :value)"),
            {"table": table, "value": value},
        )


async def add_outbox_row(engine: AsyncEngine, event_id: str) -> int:
    """An outbox row written column by column, so it fits every revision's outbox."""
    outbox: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
    values = {
        "event_id": event_id,
        "event_type": "rapport.test.v1",
        "topic": "rapport.test",
        "key": "c-1",
        "value": b"{}",
        "headers": [],
        "created_at": utcnow(),
        "attempts": 0,
    }
    async with engine.begin() as connection:
        await connection.execute(outbox.insert().values(**values))
        return (
            await connection.execute(select(outbox.c.id).where(outbox.c.event_id == event_id))
        ).scalar_one()


async def sqlite_schema(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Every table, index and trigger SQLite holds, as the SQL that made it."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'alembic_%' ORDER BY name"
            )
        )
        return [(name, sql) for name, sql in rows]


# A process that imports the migrations, waits for a line on stdin, then upgrades: several
# started together and released at once migrate one database at the same moment, as
# replicas starting together do. (Alembic's context is global: one upgrade per process.)
_MIGRATE_ON_CUE = """
import asyncio, sys
from rapport_events.db import create_engine
from rapport_events.migrations import upgrade

async def main(url, migrations, version_table):
    engine = create_engine(url)
    sys.stdin.readline()
    try:
        await upgrade(engine, migrations, version_table)
    finally:
        await engine.dispose()

asyncio.run(main(*sys.argv[1:]))
"""


async def migrate_at_once(
    database_url: str, migrations: str, version_table: str, processes: int = 2
) -> list[tuple[int | None, str]]:
    """Upgrade one database from `processes` processes released together: (exit code, stderr)."""
    started = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_ON_CUE,
            database_url,
            migrations,
            version_table,
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    outcomes = await asyncio.gather(*(p.communicate(b"go\n") for p in started))
    return [
        (p.returncode, err.decode(errors="replace"))
        for p, (_, err) in zip(started, outcomes, strict=True)
    ]


def skip_unless(database_url: str, scheme: str, reason: str) -> None:
    """Skip the test unless it runs on the database `scheme` names."""
    if not database_url.startswith(scheme):
        pytest.skip(reason)


class MigrationTests:
    """Subclass in a service's tests (named Test...) and fill in the class variables."""

    migrations: ClassVar[str]
    version_table: ClassVar[str]
    previous_head: ClassVar[str]  # the head before ids became 64-bit
    bigint_head: ClassVar[str]  # the migration that made them 64-bit
    table_prefixes: ClassVar[tuple[str, ...]]

    @pytest.fixture
    def database_template(self) -> None:
        """These tests migrate step by step: they start from an empty database."""
        return None

    @pytest.fixture
    async def engine(self, database_url: str) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(database_url)
        yield engine
        await engine.dispose()

    async def migrate(self, engine: AsyncEngine, revision: str = "heads") -> None:
        await upgrade(engine, self.migrations, self.version_table, revision)

    def metadata(self) -> MetaData:
        return service_metadata(*self.table_prefixes)

    async def test_the_migrated_schema_is_the_models(self, engine: AsyncEngine) -> None:
        await self.migrate(engine)
        metadata = self.metadata()
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                schema_differences, metadata, self.version_table
            )
        assert differences == [], differences

    async def test_every_row_id_is_64_bit_with_its_sequence(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "SQLite's INTEGER is always 64-bit")
        await self.migrate(engine)
        columns = row_id_columns(self.metadata())
        assert "outbox" in columns

        types = await postgres_types(engine, columns)

        serials = [
            f"{table.name}.{table.autoincrement_column.name} sequence"
            for table in self.metadata().tables.values()
            if table.autoincrement_column is not None
        ]
        assert {name: types.get(name) for name in serials} == dict.fromkeys(serials, "bigint")
        assert {name: kind for name, kind in types.items() if kind != "bigint"} == {}

    async def test_an_outbox_row_past_2_31_gets_its_id(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "only PostgreSQL has a sequence to move")
        await self.migrate(engine)
        await skip_ids_past(engine, "outbox", PAST_32_BITS)

        assert await add_outbox_row(engine, "evt-big") == PAST_32_BITS + 1

    async def test_replicas_starting_together_both_migrate(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "SQLite has one process per database")

        outcomes = await migrate_at_once(database_url, self.migrations, self.version_table)

        assert [code for code, _ in outcomes] == [0, 0], [err[-2000:] for _, err in outcomes]
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                schema_differences, self.metadata(), self.version_table
            )
        assert differences == [], differences

    async def test_the_upgrade_keeps_existing_rows(self, engine: AsyncEngine) -> None:
        await self.migrate(engine, self.previous_head)
        before = [await add_outbox_row(engine, f"evt-{n}") for n in range(3)]
        # As a service restarting on the new version: asyncpg's cached plans know the old types.
        await engine.dispose()

        await self.migrate(engine)

        outbox: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with engine.connect() as connection:
            kept = (await connection.execute(select(outbox.c.id).order_by(outbox.c.id))).all()
            assert [row.id for row in kept] == before
        assert await add_outbox_row(engine, "evt-after") == before[-1] + 1

    async def test_the_downgrade_narrows_the_ids_back(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "SQLite's INTEGER is always 64-bit")
        await self.migrate(engine)
        await add_outbox_row(engine, "evt-1")
        await engine.dispose()

        await downgrade(engine, self.migrations, self.version_table, self.previous_head)

        types = await postgres_types(engine, row_id_columns(self.metadata()))
        assert set(types.values()) == {"integer"}

    async def test_the_downgrade_refuses_ids_past_32_bits(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "SQLite's INTEGER is always 64-bit")
        await self.migrate(engine)
        await skip_ids_past(engine, "outbox", PAST_32_BITS)
        await add_outbox_row(engine, "evt-big")
        await engine.dispose()

        with pytest.raises(DBAPIError, match="out of range"):
            await downgrade(engine, self.migrations, self.version_table, self.previous_head)

        types = await postgres_types(engine, row_id_columns(self.metadata()))
        assert set(types.values()) == {"bigint"}

    async def test_the_upgrade_changes_nothing_on_sqlite(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "sqlite", "PostgreSQL's columns do change")
        await self.migrate(engine, self.previous_head)
        before = await sqlite_schema(engine)

        await self.migrate(engine, self.bigint_head)

        assert before
        assert await sqlite_schema(engine) == before

    async def test_outbox_parking_comes_and_goes_keeping_the_rows(
        self, engine: AsyncEngine
    ) -> None:
        await self.migrate(engine, self.bigint_head)
        before = await add_outbox_row(engine, "evt-1")
        await engine.dispose()

        await self.migrate(engine)
        outbox: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
        async with engine.begin() as connection:
            kept = (await connection.execute(select(outbox.c.id, outbox.c.parked_at))).all()
            assert [tuple(row) for row in kept] == [(before, None)]
            await connection.execute(outbox.update().values(parked_at=utcnow(), park_reason="x"))
        await engine.dispose()

        await downgrade(engine, self.migrations, self.version_table, self.bigint_head)
        await engine.dispose()

        async with engine.connect() as connection:
            kept = (await connection.execute(text("SELECT id, sent_at FROM outbox"))).all()
            assert [tuple(row) for row in kept] == [(before, None)]  # pending again
