"""Two replicas' background workers on one database (SQLite and PostgreSQL), each with its
own engine, racing over the same due work: every reply reaches the platform's webhook once,
and every missed SLA target is recorded and published once."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from rapport_events.base import Event
from rapport_events.db import SessionFactory, session_factory, transaction
from rapport_events.testing.broker import free_port
from rapport_events.testing.replicas import replica_engines, serving
from rapport_events.types import TicketSlaBreached
from rapport_support.main import MIGRATIONS, VERSION_TABLE
from rapport_support.mentions import service as mention_service
from rapport_support.mentions.models import MentionCreate, ReplyCreate, SupportMentionReply
from rapport_support.mentions.webhooks import DELIVERY_HEADER
from rapport_support.mentions.worker import ReplyDispatcher
from rapport_support.settings import Settings, SocialWebhook
from rapport_support.tickets import service as ticket_service
from rapport_support.tickets import sla
from rapport_support.tickets.models import TicketCreate
from rapport_support.unit_of_work import SqlSupportUnitOfWork

MENTIONS = 20
TICKETS = 20
OPENED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[SessionFactory]]:
    """Two session factories on the same database, each on an engine (a pool) of its own."""
    async with replica_engines(database_url, MIGRATIONS, VERSION_TABLE) as engines:
        yield [session_factory(engine) for engine in engines]


class Platform:
    """A social platform's reply webhook, over real HTTP: counts each delivery id."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = dict(scope["headers"])
        self.deliveries[headers[DELIVERY_HEADER.lower().encode()].decode()] += 1
        await asyncio.sleep(0.01)  # a platform takes a moment: the other replica claims meanwhile
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    receiver = Platform()
    async with serving(receiver, receiver.port):
        yield receiver


class TestTwoReplyDispatchers:
    async def test_each_reply_reaches_the_platform_once(
        self, replicas: list[SessionFactory], settings: Settings, platform: Platform
    ) -> None:
        hook = SocialWebhook(url=f"http://127.0.0.1:{platform.port}/replies", secret="s" * 32)  # type: ignore[arg-type]
        hooked = settings.model_copy(update={"social_webhooks": {"twitter": hook}})
        async with transaction(replicas[0]) as session:
            for n in range(MENTIONS):
                mention, _ = await mention_service.ingest_mention(
                    SqlSupportUnitOfWork(session, hooked),
                    hooked,
                    MentionCreate(platform="twitter", handle=f"@fan{n}", text="Love it"),  # type: ignore[call-arg]
                )
                await mention_service.reply_to_mention(
                    SqlSupportUnitOfWork(session, hooked),
                    hooked,
                    mention.id,
                    ReplyCreate(text="Thanks!", author="pr"),
                )
        async with httpx.AsyncClient() as client:
            dispatchers = [ReplyDispatcher(sessions, hooked, client) for sessions in replicas]

            async def drain(dispatcher: ReplyDispatcher) -> int:
                attempted = total = await dispatcher.deliver_due()
                while attempted:
                    attempted = await dispatcher.deliver_due()
                    total += attempted
                return total

            attempted = await asyncio.gather(*(drain(d) for d in dispatchers))

        assert sum(attempted) == MENTIONS
        assert len(platform.deliveries) == MENTIONS
        assert set(platform.deliveries.values()) == {1}, "a reply was posted twice"
        async with replicas[1]() as session:
            replies = (await session.exec(select(SupportMentionReply))).all()
        assert {(r.status, r.attempts) for r in replies} == {("sent", 1)}


class TestTwoSlaMonitors:
    async def test_each_missed_target_is_recorded_and_published_once(
        self, replicas: list[SessionFactory], settings: Settings, outbox: Outbox
    ) -> None:
        async with transaction(replicas[0]) as session:
            for n in range(TICKETS):
                await ticket_service.open_ticket(
                    SqlSupportUnitOfWork(session, settings),
                    settings,
                    TicketCreate(  # type: ignore[call-arg]
                        customer_id=f"cust-{n}", subject="Machine leaks", priority="urgent"
                    ),
                    now=OPENED_AT,
                )
        late = OPENED_AT + timedelta(days=30)

        async def monitor(sessions: SessionFactory) -> int:
            recorded = 0
            while True:
                async with transaction(sessions) as session:
                    found = await sla.record_due_breaches(
                        SqlSupportUnitOfWork(session, settings), now=late, limit=3
                    )
                if not found:
                    return recorded
                recorded += len(found)

        recorded = await asyncio.gather(*(monitor(sessions) for sessions in replicas))

        published = [e for e in await outbox(replicas[0]) if isinstance(e, TicketSlaBreached)]
        targets = Counter((e.ticket_id, e.target) for e in published)
        assert sum(recorded) == len(published) == 2 * TICKETS  # first response and resolution
        assert set(targets.values()) == {1}
