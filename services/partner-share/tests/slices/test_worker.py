"""Two fillers on one database, each on an engine of its own (as two replicas have), racing
over the same consents: profile is asked once for each."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import select

from rapport_events.db import SessionFactory, session_factory, transaction
from rapport_events.testing.broker import free_port
from rapport_events.testing.replicas import replica_engines, serving
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.slices.worker import ProfileClient, fill_due

CONSENTS = 12
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Profile:
    """Profile's customer and metrics routes over real HTTP, counting each customer's calls."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"].strip("/").split("/")
        self.calls["/".join(path)] += 1
        await asyncio.sleep(0.01)  # profile takes a moment: the other filler claims meanwhile
        body = b'{"email": "ann@example.com", "city": "York"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def profile() -> AsyncIterator[Profile]:
    stub = Profile()
    async with serving(stub, stub.port):
        yield stub


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[SessionFactory]]:
    """Two session factories on the same database, each on an engine (a pool) of its own."""
    async with replica_engines(database_url, MIGRATIONS, VERSION_TABLE) as engines:
        yield [session_factory(engine) for engine in engines]


class TestTwoFillers:
    async def test_profile_is_asked_once_for_each_consent(
        self, replicas: list[SessionFactory], profile: Profile
    ) -> None:
        partner = Partner(
            id="p-1",
            name="p-1",
            industry="retail",
            slices=["contact", "demographics"],
            purposes=["marketing"],
            webhook_secret="s" * 32,
            ref_key="ab" * 32,
            rate_limit_per_second=10.0,
            rate_limit_burst=10,
            created_at=START,
        )
        async with transaction(replicas[0]) as session:
            session.add(partner)
            await session.flush()
            for n in range(CONSENTS):
                session.add(
                    PartnerConsent(
                        customer_id=f"cust-{n:02d}",
                        partner_id=partner.id,
                        ref=security.pseudonym(partner.ref_key, f"cust-{n:02d}"),
                        granted=True,
                        slices=["contact", "demographics"],
                        granted_at=START,
                        changed_at=START,
                        fill_pending=True,
                        fill_token=n + 1,
                    )
                )
        async with httpx.AsyncClient() as http:
            client = ProfileClient(http, f"http://127.0.0.1:{profile.port}", "t", 5.0)

            async def filler(sessions: Any) -> int:
                done = taken = await fill_due(sessions, client, limit=3)
                while taken:
                    taken = await fill_due(sessions, client, limit=3)
                    done += taken
                return done

            filled = await asyncio.gather(*(filler(sessions) for sessions in replicas))
        async with replicas[1]() as session:
            pending = [
                c for c in (await session.exec(select(PartnerConsent))).all() if c.fill_pending
            ]

        assert sum(filled) == CONSENTS
        assert pending == []
        customers = {f"customers/cust-{n:02d}" for n in range(CONSENTS)}
        assert set(profile.calls) == customers
        assert set(profile.calls.values()) == {1}, "profile was asked twice for a consent"
