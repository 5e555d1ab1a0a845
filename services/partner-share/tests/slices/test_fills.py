"""Fills of profile-backed slices when the consent changes while profile is being asked."""

import asyncio
import time
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    ProfileStub,
    apply,
    consent_of,
    granted,
    profile_customer,
    register_partner,
    revoked,
    wait_filled,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.testing.harness import until
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.consents.store import SqlConsentStore
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.runs import Run
from rapport_partner_share.slices import fills
from rapport_partner_share.slices.fills import FillJob
from rapport_partner_share.unit_of_work import SqlPartnerShareUnitOfWork

# The lease a fetch holds on its consent (`slices.fills.due_fills`): a fill that waited for
# it would take this long.
FETCH_LEASE_S = 30.0


class TestAChangeDuringAFetch:
    async def test_a_partial_revocation_drops_the_fetch_and_fills_again_at_once(
        self, app: FastAPI, client: httpx.AsyncClient, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client, slices=["demographics", "purchase_summary"])
        profile_stub.customers["c-ada"] = profile_customer("c-ada")
        profile_stub.metrics["c-ada"] = {"orders_count": 2, "revenue": "80.00"}
        profile_stub.hold = asyncio.Event()

        await apply(app, granted("c-ada", partner.id, ["demographics", "purchase_summary"], 1))
        await until(
            lambda: any("c-ada" in path for path, _ in profile_stub.requests),
            timeout=15.0,
            what="the filler asking profile",
        )
        await apply(app, revoked("c-ada", partner.id, ["demographics"], 2))
        started = time.monotonic()
        profile_stub.hold.set()  # the fetch from before the revocation answers now

        consent = await wait_filled(client, "c-ada", partner.id, timeout=FETCH_LEASE_S / 2)

        assert time.monotonic() - started < FETCH_LEASE_S / 2
        assert consent["slices"] == ["purchase_summary"]
        assert consent["version"] == 2


class TestAFillCommittingWhileAConsentChangeIsApplied:
    async def test_the_change_does_not_undo_the_fill(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        profile_stub: ProfileStub,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A grant that needs no new fetch is applied while a fill completes: it used to
        read the consent before the fill and write it back after, leaving it pending
        behind the fetch's lease (PostgreSQL; SQLite's writers take turns)."""
        partner = await register_partner(client, slices=["demographics", "loyalty"])
        profile_stub.customers["c-bob"] = profile_customer("c-bob")
        profile_stub.hold = asyncio.Event()  # the service's own filler stays in flight
        await apply(app, granted("c-bob", partner.id, ["demographics"], 1))
        await until(
            lambda: any("c-bob" in path for path, _ in profile_stub.requests),
            timeout=15.0,
            what="the filler asking profile",
        )
        sessions = app.state.runtime.sessions
        async with transaction(sessions) as session:
            consent = await SqlConsentStore(session).get_consent("c-bob", partner.id)
            assert consent is not None and consent.fill_pending
            job = FillJob("c-bob", partner.id, consent.fill_token, frozenset({"demographics"}), 0)

        read, write = asyncio.Event(), asyncio.Event()
        original_write = Run.write

        async def write_when_told(run: Run, session: AsyncSession, now: datetime) -> None:
            read.set()
            await write.wait()
            await original_write(run, session, now)

        monkeypatch.setattr(Run, "write", write_when_told)
        # Adds a slice that starts empty: no new fetch, the fill token stays.
        change = asyncio.create_task(
            apply(app, granted("c-bob", partner.id, ["demographics", "loyalty"], 2))
        )
        await asyncio.wait_for(read.wait(), timeout=10.0)

        async def complete() -> bool:
            async with transaction(sessions) as session:
                return await fills.complete_fill(
                    SqlPartnerShareUnitOfWork(session),
                    job,
                    customer=profile_stub.customers["c-bob"],
                    metrics=None,
                    fetched_at=utcnow(),
                )

        fill = asyncio.create_task(complete())
        await asyncio.sleep(0.3)  # time for the fill to commit, were the consent not locked
        write.set()
        await asyncio.wait_for(change, timeout=10.0)
        assert await asyncio.wait_for(fill, timeout=10.0)
        monkeypatch.undo()
        profile_stub.hold.set()

        consent_row = await consent_of(client, "c-bob", partner.id)
        assert consent_row is not None
        assert consent_row["fill_pending"] is False, consent_row
        assert consent_row["slices"] == ["demographics", "loyalty"]
        assert consent_row["version"] == 2


class TestDueFillsOrder:
    async def test_first_attempts_come_before_retries_on_every_database(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
        sessions = session_factory(engine)
        now = utcnow()
        # A retry due a minute ago and two consents never tried (fill_next_at NULL).
        waiting = {"c-retry": now - timedelta(minutes=1), "c-new-1": None, "c-new-2": None}
        try:
            async with transaction(sessions) as session:
                for customer_id, next_at in waiting.items():
                    session.add(pending_fill(customer_id, next_at, now))
            async with transaction(sessions) as session:
                due = await SqlConsentStore(session).due_fills(now, limit=2)
        finally:
            await engine.dispose()

        assert [consent.customer_id for consent in due] == ["c-new-1", "c-new-2"]


def pending_fill(customer_id: str, next_at: datetime | None, now: datetime) -> PartnerConsent:
    return PartnerConsent(
        customer_id=customer_id,
        partner_id="p-1",
        ref=f"ref-{customer_id}",
        granted=True,
        slices=["demographics"],
        version=1,
        granted_at=now,
        changed_at=now,
        fill_pending=True,
        fill_next_at=next_at,
    )
