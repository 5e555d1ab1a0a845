"""Two replicas' workers on one database (SQLite and PostgreSQL), each with its own engine,
racing over the same due work: every message reaches the SMTP server once, every journey
timer fires once, and a sender whose lease ran out does not send what another took over."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import CampaignCreate
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.journeys.models import JourneyCreate
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_campaign.messaging import service as messaging_service
from rapport_campaign.messaging.models import Message
from rapport_campaign.messaging.store import IN_DOUBT
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_campaign.worker import Worker
from rapport_events.base import Event, utcnow
from rapport_events.db import SessionFactory, session_factory, transaction
from rapport_events.testing.replicas import replica_engines
from rapport_events.types import (
    CampaignMessageSent,
    CartUpdated,
    ConsentGranted,
    CustomerRegistered,
)

CUSTOMERS = [f"cust-{n:02d}" for n in range(24)]
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[SessionFactory]]:
    """Two session factories on the same database, each on an engine (a pool) of its own."""
    async with replica_engines(database_url, MIGRATIONS, VERSION_TABLE) as engines:
        yield [session_factory(engine) for engine in engines]


async def audience(deliver: Callable[..., Awaitable[Any]]) -> None:
    events: list[Event] = []
    for customer_id in CUSTOMERS:
        events += [
            CustomerRegistered(
                customer_id=customer_id,
                email=f"{customer_id}@example.com",
                first_name="Ada",
                last_name="Tester",
            ),
            ConsentGranted(
                customer_id=customer_id,
                purpose="marketing",
                channel="email",
                source="web_form",
                version=1,
            ),
        ]
    await deliver(*events)


def sent_ids(events: list[Event]) -> list[str]:
    return [e.message_id for e in events if isinstance(e, CampaignMessageSent)]


async def launch(sessions: SessionFactory, body: str, customers: list[str]) -> None:
    """An e-mail campaign to `customers`, launched: its messages are due now."""
    async with transaction(sessions) as session:
        campaign = await campaign_service.create_campaign(
            SqlCampaignUnitOfWork(session),
            CampaignCreate.model_validate(
                {
                    "name": "Spring",
                    "channel": "email",
                    "variants": [{"name": "A", "subject": "Hi", "body": body}],
                    "audience": {"customer_ids": customers},
                }
            ),
        )
        await campaign_service.launch_campaign(SqlCampaignUnitOfWork(session), campaign.id, None)


def workers(
    replicas: list[SessionFactory], settings: Settings, http: httpx.AsyncClient
) -> list[Worker]:
    """One background worker per replica, each on its replica's sessions."""
    tokens = Tokens("secret", settings.public_url)
    return [
        Worker(sessions=sessions, settings=settings, tokens=tokens, http=http)
        for sessions in replicas
    ]


class TestTwoSenders:
    async def test_each_message_reaches_the_smtp_server_once(
        self,
        database_url: str,
        replicas: list[SessionFactory],
        settings: Settings,
        smtp: Any,
        deliver: Callable[..., Awaitable[Any]],
        outbox: Outbox,
    ) -> None:
        await audience(deliver)
        await launch(replicas[0], "Spring is here", CUSTOMERS)
        # Small batches, so the two senders keep claiming while the other sends.
        config = settings.model_copy(
            update={"smtp_host": smtp.host, "smtp_port": smtp.port, "send_batch_size": 4}
        )
        async with httpx.AsyncClient() as http:
            senders = workers(replicas, config, http)

            async def drain(worker: Worker) -> None:
                claimed = await worker.send_once()
                while claimed:
                    claimed = await worker.send_once()

            await asyncio.gather(*(drain(worker) for worker in senders))

        recipients = sorted(r for rcpt in smtp.recipients for r in rcpt)
        assert recipients == sorted(f"{c}@example.com" for c in CUSTOMERS)
        assert sum(worker.sent for worker in senders) == len(CUSTOMERS)
        if database_url.startswith("postgresql"):
            # SKIP LOCKED: a claim never waits for the other's. (SQLite's busy handler is not
            # fair, so there one sender may take every batch.)
            assert all(worker.sent for worker in senders), "both replicas took a share"
        published = sent_ids(await outbox(replicas[0]))
        assert len(published) == len(set(published)) == len(CUSTOMERS)

    async def test_a_sender_whose_lease_ran_out_does_not_send_what_another_took(
        self,
        replicas: list[SessionFactory],
        settings: Settings,
        deliver: Callable[..., Awaitable[Any]],
        outbox: Outbox,
    ) -> None:
        await audience(deliver)
        await launch(replicas[0], "Hello", CUSTOMERS[:3])
        short = settings.model_copy(update={"send_lease_s": 0.2})
        tokens = Tokens("secret", settings.public_url)
        # The first sender claims the batch, then stalls (a slow channel) past its lease.
        async with transaction(replicas[0]) as session:
            stalled = [
                (m.id, m.due_at)
                for m in await messaging_service.claim_due(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic), short
                )
            ]
        assert len(stalled) == 3
        await asyncio.sleep(0.3)
        async with transaction(replicas[1]) as session:
            taken = await messaging_service.claim_due(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), settings
            )
        assert sorted(m.id for m in taken) == sorted(i for i, _ in stalled)

        for message_id, lease in stalled:
            async with transaction(replicas[0]) as session:
                outgoing = await messaging_service.prepare(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic),
                    message_id,
                    short,
                    tokens,
                    messaging_service.Recommender(),
                    lease=lease,
                )
            assert outgoing is None, "the stalled sender must not put it on the wire"
        for message in taken:
            async with transaction(replicas[1]) as session:
                outgoing = await messaging_service.prepare(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic),
                    message.id,
                    settings,
                    tokens,
                    messaging_service.Recommender(),
                    lease=message.due_at,
                )
                assert outgoing is not None
                await messaging_service.finish_sent(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic), outgoing
                )
            # The stalled sender's failure report comes late: it changes nothing.
            async with transaction(replicas[0]) as session:
                await messaging_service.finish_failed(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic),
                    message.id,
                    "timeout",
                    False,
                    short,
                    lease=stalled[0][1],
                )

        assert sorted(sent_ids(await outbox(replicas[0]))) == sorted(i for i, _ in stalled)

    async def test_a_message_handed_to_the_channel_by_a_sender_that_died_is_not_sent_again(
        self,
        replicas: list[SessionFactory],
        settings: Settings,
        deliver: Callable[..., Awaitable[Any]],
    ) -> None:
        await audience(deliver)
        await launch(replicas[0], "Hello", CUSTOMERS[:2])
        short = settings.model_copy(update={"send_lease_s": 0.2})
        tokens = Tokens("secret", settings.public_url)
        # The first sender claims both and hands one to the channel, then dies (kill -9)
        # before it records the outcome: the SMTP server may or may not have it.
        async with transaction(replicas[0]) as session:
            claimed = await messaging_service.claim_due(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), short
            )
        handed, never_tried = claimed
        async with transaction(replicas[0]) as session:
            outgoing = await messaging_service.prepare(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                handed.id,
                short,
                tokens,
                messaging_service.Recommender(),
                lease=handed.due_at,
            )
        assert outgoing is not None
        await asyncio.sleep(0.3)  # the dead sender's lease runs out

        async with transaction(replicas[1]) as session:
            taken = await messaging_service.claim_due(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), settings
            )

        assert [m.id for m in taken] == [never_tried.id]
        async with transaction(replicas[1]) as session:
            doubtful = await session.get(Message, handed.id)
            assert doubtful is not None
            assert (doubtful.status, doubtful.reason) == ("failed", IN_DOUBT)
        # The dead sender's outcome, had it come: the channel took it, so it counts as sent.
        async with transaction(replicas[0]) as session:
            await messaging_service.finish_sent(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), outgoing
            )
        async with transaction(replicas[1]) as session:
            sent = await session.get(Message, handed.id)
            assert sent is not None and sent.status == "sent"


class TestTwoUnsubscribeSyncs:
    async def test_profile_hears_of_each_unsubscribe_once(
        self,
        replicas: list[SessionFactory],
        settings: Settings,
        profile_stub: Any,
        deliver: Callable[..., Awaitable[Any]],
    ) -> None:
        await audience(deliver)
        async with transaction(replicas[0]) as session:
            for customer_id in CUSTOMERS:
                await tracking_service.unsubscribe(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic), customer_id, "email", None
                )
        config = settings.model_copy(update={"profile_url": profile_stub.url})
        async with httpx.AsyncClient() as http:
            syncs = workers(replicas, config, http)

            async def drain(worker: Worker) -> int:
                synced = taken = await worker.sync_unsubscribes()
                while taken:
                    taken = await worker.sync_unsubscribes()
                    synced += taken
                return synced

            synced = await asyncio.gather(*(drain(worker) for worker in syncs))

        paths = Counter(request["path"] for request in profile_stub.requests)
        assert sum(synced) == len(CUSTOMERS)
        assert set(paths) == {f"/customers/{c}/consents" for c in CUSTOMERS}
        assert set(paths.values()) == {1}, "profile was told twice"


class TestTwoSchedulers:
    async def test_each_due_timer_fires_once(
        self,
        replicas: list[SessionFactory],
        deliver: Callable[..., Awaitable[Any]],
    ) -> None:
        async with transaction(replicas[0]) as session:
            journey = await journey_service.create_journey(
                SqlCampaignUnitOfWork(session),
                JourneyCreate.model_validate(
                    {
                        "name": "Cart",
                        "channel": "email",
                        "trigger": "abandoned_cart",
                        "delay_minutes": 30,
                        "variants": [{"name": "A", "subject": "Forgot?", "body": "Your cart"}],
                    }
                ),
            )
        await audience(deliver)
        await deliver(
            *(
                CartUpdated(
                    customer_id=customer_id,
                    cart_id="c1",
                    action="product_added",
                    items=(),
                    value=10,
                )
                for customer_id in CUSTOMERS
            )
        )
        later = utcnow() + timedelta(hours=1)

        async def scheduler(sessions: SessionFactory) -> int:
            fired = 0
            while True:
                async with transaction(sessions) as session:
                    now = await journey_service.fire_due_journeys(
                        SqlCampaignUnitOfWork(session), later, limit=5
                    )
                if not now:
                    return fired
                fired += now

        fired = await asyncio.gather(*(scheduler(sessions) for sessions in replicas))

        assert sum(fired) == len(CUSTOMERS)
        async with replicas[1]() as session:
            messages = (
                await session.exec(select(Message).where(Message.campaign_id == journey.id))
            ).all()
        assert sorted(m.customer_id or "" for m in messages) == sorted(CUSTOMERS)
