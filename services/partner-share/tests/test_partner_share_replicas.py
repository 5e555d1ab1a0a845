"""Partner-share with two replicas on one database, each on an engine of its own: two fillers
racing over the same consents ask profile once for each, and a partner's rate limit holds
across replicas (two limiters spend from one allowance kept in PostgreSQL). The in-process
limiter (SQLite) keeps the same arithmetic."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from rapport_events.db import SessionFactory, session_factory, transaction
from rapport_events.testing.broker import free_port
from rapport_events.testing.migrations import skip_unless
from rapport_events.testing.replicas import replica_engines, serving
from rapport_partner_share import security
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.models import Partner, PartnerConsent
from rapport_partner_share.ratelimit import RateLimiter, SharedRateLimiter
from rapport_partner_share.workers import ProfileClient, fill_due

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


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines on one migrated PostgreSQL database, as two replicas have."""
    skip_unless(database_url, "postgresql", "the shared limit is kept in PostgreSQL")
    async with replica_engines(database_url, MIGRATIONS, VERSION_TABLE) as pair:
        yield pair


class TestSharedLimit:
    async def test_two_replicas_together_allow_only_the_burst(
        self, engines: list[AsyncEngine]
    ) -> None:
        limiters = [SharedRateLimiter(engine) for engine in engines]

        answers = await asyncio.gather(
            *(limiters[n % 2].take("partner-1", rate=0.5, burst=6) for n in range(20))
        )

        allowed = [wait for wait in answers if wait is None]
        assert len(allowed) == 6, answers
        waits = [wait for wait in answers if wait is not None]
        assert all(0 < wait <= 2.0 + 0.5 for wait in waits), waits  # one interval, 2 s

    async def test_partners_have_their_own_allowance_and_it_comes_back(
        self, engines: list[AsyncEngine]
    ) -> None:
        first, second = (SharedRateLimiter(engine) for engine in engines)

        assert await first.take("busy", rate=1, burst=1) is None
        assert await second.take("busy", rate=1, burst=1) is not None
        assert await second.take("calm", rate=1, burst=1) is None
        await asyncio.sleep(1.05)  # one interval at 1/s
        assert await second.take("busy", rate=1, burst=1) is None

    async def test_a_removed_partner_starts_afresh(self, engines: list[AsyncEngine]) -> None:
        first, second = (SharedRateLimiter(engine) for engine in engines)
        assert await first.take("gone", rate=0.1, burst=1) is None
        assert await second.take("gone", rate=0.1, burst=1) is not None

        await first.forget("gone")

        assert await second.take("gone", rate=0.1, burst=1) is None


class TestLocalLimit:
    async def test_the_burst_then_one_request_per_interval(self) -> None:
        now = [100.0]
        limiter = RateLimiter(clock=lambda: now[0])

        answers = [await limiter.take("p", rate=2, burst=3) for _ in range(4)]
        assert answers[:3] == [None, None, None]
        assert answers[3] == pytest.approx(0.5)
        now[0] += 0.5
        assert await limiter.take("p", rate=2, burst=3) is None
        assert await limiter.take("p", rate=2, burst=3) == pytest.approx(0.5)
