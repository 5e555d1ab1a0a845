"""The projection handlers on a real database (SQLite and PostgreSQL)."""

from sqlmodel import select

from rapport_campaign.audience.models import AudienceMember
from rapport_campaign.audience.projection import apply_registrations
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.settings import Settings
from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory, transaction
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer
from rapport_events.types import CustomerRegistered


def registered(**overrides: object) -> CustomerRegistered:
    values: dict[str, object] = {
        "customer_id": "cust-1",
        "email": "ada@example.com",
        "phone": "+14155550100",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
        "acquisition_channel": "referral",
    }
    values.update(overrides)
    return CustomerRegistered(**values)  # type: ignore[arg-type]


async def audience(sessions: SessionFactory) -> list[AudienceMember]:
    async with sessions() as session:
        return list((await session.exec(select(AudienceMember))).all())


class TestOnCustomerRegistered:
    async def test_adds_the_customer_to_the_audience(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        event = registered()
        async with transaction(sessions) as session:
            await apply_registrations(events=[event], session=session, settings=settings)

        [member] = await audience(sessions)
        assert member.customer_id == "cust-1"
        assert member.email == "ada@example.com"
        assert (member.first_name, member.last_name) == ("Ada", "Lovelace")
        assert member.country == "GB"
        assert member.acquisition_channel == "referral"
        assert member.registered_at.replace(tzinfo=None) == event.occurred_at.replace(tzinfo=None)

    async def test_the_same_event_twice_leaves_one_row(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        event = registered()
        for _ in range(2):
            async with transaction(sessions) as session:
                await apply_registrations(events=[event], session=session, settings=settings)

        assert len(await audience(sessions)) == 1

    async def test_twice_in_one_transaction_leaves_one_row(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        event = registered()
        async with transaction(sessions) as session:
            await apply_registrations(events=[event], session=session, settings=settings)
            await apply_registrations(events=[event], session=session, settings=settings)

        assert len(await audience(sessions)) == 1

    async def test_a_replay_keeps_later_changes(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await apply_registrations(events=[registered()], session=session, settings=settings)
        async with transaction(sessions) as session:
            member = await session.get(AudienceMember, "cust-1")
            assert member is not None
            member.email = "ada@newmail.example"

        async with transaction(sessions) as session:
            await apply_registrations(events=[registered()], session=session, settings=settings)

        [member] = await audience(sessions)
        assert member.email == "ada@newmail.example"


class TestHandlerMap:
    async def test_the_runner_applies_a_redelivered_event_once(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        runner = ConsumerRunner(
            service="campaign",
            settings=KafkaSettings(),
            session_factory=sessions,
            handlers=HANDLERS,
            producer=FakeProducer(),  # type: ignore[arg-type]
            dependencies={"settings": settings},
        )
        envelope = Envelope(data=registered(), source="/services/profile")
        handlers = HANDLERS[CustomerRegistered]

        assert await runner.apply(envelope, handlers) is True
        assert await runner.apply(envelope, handlers) is False
        assert len(await audience(sessions)) == 1
