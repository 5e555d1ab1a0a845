"""Sales' migrations build the models' schema (SQLite and PostgreSQL), with 64-bit row ids
and the default pipeline in place."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import rapport_sales.tables  # noqa: F401  (every domain's tables on the metadata)
from rapport_events.db import create_engine
from rapport_events.migrations import downgrade, upgrade
from rapport_events.testing.migrations import (
    PAST_32_BITS,
    add_outbox_row,
    postgres_types,
    row_id_columns,
    schema_differences,
    service_metadata,
    skip_ids_past,
    skip_unless,
)
from rapport_sales.main import MIGRATIONS, VERSION_TABLE


@pytest.fixture
def database_template() -> None:
    """These tests migrate themselves: they start from an empty database."""
    return None


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


class TestSalesMigrations:
    async def test_the_migrated_schema_is_the_models(self, engine: AsyncEngine) -> None:
        await upgrade(engine, MIGRATIONS, VERSION_TABLE)
        metadata = service_metadata("sales_")
        async with engine.connect() as connection:
            differences = await connection.run_sync(schema_differences, metadata, VERSION_TABLE)
        assert differences == [], differences

    async def test_the_default_pipeline_has_ordered_stages_with_probabilities(
        self, engine: AsyncEngine
    ) -> None:
        await upgrade(engine, MIGRATIONS, VERSION_TABLE)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT key, probability, outcome FROM sales_stages "
                    "WHERE pipeline_id = 'default' ORDER BY position"
                )
            )
            stages = [(key, float(p), outcome) for key, p, outcome in rows]
        assert stages == [
            ("lead", 0.1, "open"),
            ("qualified", 0.25, "open"),
            ("proposal", 0.5, "open"),
            ("negotiation", 0.75, "open"),
            ("won", 1.0, "won"),
            ("lost", 0.0, "lost"),
        ]

    async def test_row_ids_are_64_bit(self, engine: AsyncEngine, database_url: str) -> None:
        skip_unless(database_url, "postgresql", "SQLite's INTEGER is always 64-bit")
        await upgrade(engine, MIGRATIONS, VERSION_TABLE)
        types = await postgres_types(engine, row_id_columns(service_metadata("sales_")))
        assert types and set(types.values()) == {"bigint"}, types
        await skip_ids_past(engine, "outbox", PAST_32_BITS)
        assert await add_outbox_row(engine, "evt-big") == PAST_32_BITS + 1

    async def test_the_downgrade_removes_everything(self, engine: AsyncEngine) -> None:
        await upgrade(engine, MIGRATIONS, VERSION_TABLE)
        await downgrade(engine, MIGRATIONS, VERSION_TABLE, "base")
        async with engine.connect() as connection:
            left = await connection.run_sync(
                lambda sync: [
                    name
                    for name in __import__("sqlalchemy").inspect(sync).get_table_names()
                    if name.startswith("sales_") or name in ("outbox", "inbox")
                ]
            )
        assert left == []
