"""Partner-share's migrations build the models' schema, with 64-bit row ids (SQLite and
PostgreSQL), and the audit ledger stays append-only through them."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.testing.migrations import (
    PAST_32_BITS,
    MigrationTests,
    skip_ids_past,
    skip_unless,
)
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE

LEDGER: Table = Disclosure.__table__  # type: ignore[attr-defined]
SUBJECTS: Table = DisclosureSubject.__table__  # type: ignore[attr-defined]


class TestPartnerShareMigrations(MigrationTests):
    migrations = MIGRATIONS
    version_table = VERSION_TABLE
    previous_head = "partner_share_0002_sharing"
    bigint_head = "partner_share_0003_bigint_ids"
    table_prefixes = ("partner_",)

    async def test_the_ledger_keeps_its_entries_and_stays_append_only(
        self, engine: AsyncEngine
    ) -> None:
        await self.migrate(engine, self.previous_head)
        entry = await add_ledger_entry(engine, "evt-1", "c-1")
        await engine.dispose()

        await self.migrate(engine)

        for statement in (
            "UPDATE partner_share_disclosures SET purpose = 'other'",
            "DELETE FROM partner_share_disclosures",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as connection:
                    await connection.execute(text(statement))
        async with engine.connect() as connection:
            kept = await connection.execute(
                select(LEDGER.c.id, LEDGER.c.purpose, SUBJECTS.c.customer_id).join(
                    SUBJECTS, SUBJECTS.c.disclosure_id == LEDGER.c.id
                )
            )
            assert kept.all() == [(entry, "analytics", "c-1")]
        assert await add_ledger_entry(engine, "evt-2", "c-2") == entry + 1

    async def test_a_ledger_entry_past_2_31_keeps_its_subject(
        self, engine: AsyncEngine, database_url: str
    ) -> None:
        skip_unless(database_url, "postgresql", "only PostgreSQL has a sequence to move")
        await self.migrate(engine)
        await skip_ids_past(engine, LEDGER.name, PAST_32_BITS)

        assert await add_ledger_entry(engine, "evt-big", "c-1") == PAST_32_BITS + 1


async def add_ledger_entry(engine: AsyncEngine, event_id: str, customer_id: str) -> int:
    """A ledger entry and its subject, written column by column to fit every revision."""
    async with engine.begin() as connection:
        await connection.execute(
            LEDGER.insert().values(
                event_id=event_id,
                partner_id="p-1",
                partner_name="Partner",
                partner_ref="ref-1",
                slices=["contact"],
                fields=["contact.email"],
                purpose="analytics",
                consent_version=1,
                request_id="req-1",
                disclosed_at=datetime.now(UTC),
            )
        )
        entry: int = (
            await connection.execute(select(LEDGER.c.id).where(LEDGER.c.event_id == event_id))
        ).scalar_one()
        await connection.execute(
            SUBJECTS.insert().values(disclosure_id=entry, customer_id=customer_id)
        )
    return entry
