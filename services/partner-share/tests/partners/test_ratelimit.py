"""A partner's rate limit holds across replicas: two limiters, each on an engine of its own,
spend from one allowance kept in PostgreSQL. The in-process limiter (SQLite) keeps the same
arithmetic."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.testing.migrations import skip_unless
from rapport_events.testing.replicas import replica_engines
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.partners.ratelimit import RateLimiter, SharedRateLimiter


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
