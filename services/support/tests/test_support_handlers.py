"""Support's handlers through the consumer runner on a real database (SQLite and PostgreSQL):
dependencies injected by name, redeliveries applied once, replays harmless."""

from decimal import Decimal

from sqlmodel import select

from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory, transaction
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    LineItem,
    OrderCompleted,
)
from rapport_support.customers.models import SupportCustomer
from rapport_support.customers.projection import apply_registrations
from rapport_support.handlers import HANDLERS
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings


def registered(**overrides: object) -> CustomerRegistered:
    values: dict[str, object] = {
        "customer_id": "cust-1",
        "email": "ada@example.com",
        "phone": "+14155550100",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
    }
    values.update(overrides)
    return CustomerRegistered(**values)  # type: ignore[arg-type]


def runner(sessions: SessionFactory, settings: Settings) -> ConsumerRunner:
    return ConsumerRunner(
        service="support",
        settings=KafkaSettings(),
        session_factory=sessions,
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": settings},
    )


async def support_customers(sessions: SessionFactory) -> list[SupportCustomer]:
    async with sessions() as session:
        return list((await session.exec(select(SupportCustomer))).all())


class TestHandlerMap:
    def test_every_event_support_projects_has_a_handler(self) -> None:
        assert set(HANDLERS) == {
            CustomerRegistered,
            CustomerUpdated,
            CustomerMerged,
            CustomerErased,
            ConsentGranted,
            ConsentRevoked,
            OrderCompleted,
            CustomerValueChanged,
        }

    async def test_the_runner_applies_a_redelivered_event_once(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        envelope = Envelope(data=registered(), source="/services/profile")
        consumer = runner(sessions, settings)

        assert await consumer.apply(envelope, HANDLERS[CustomerRegistered]) is True
        assert await consumer.apply(envelope, HANDLERS[CustomerRegistered]) is False
        assert len(await support_customers(sessions)) == 1

    async def test_the_order_handler_gets_the_settings_by_name(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        order = OrderCompleted(
            customer_id="cust-1",
            order_id="o-1",
            revenue=Decimal(349),
            items=(LineItem(product_id="p", product_model="Barista X2", price=Decimal(349)),),
        )

        await runner(sessions, settings).apply(
            Envelope(data=order, source="/services/profile"), HANDLERS[OrderCompleted]
        )

        async with sessions() as session:
            [product] = (await session.exec(select(SupportProduct))).all()
        months = (product.warranty_ends_on.year - order.occurred_at.year) * 12 + (
            product.warranty_ends_on.month - order.occurred_at.month
        )
        assert months == 36, "the configured warranty of the Barista X2"


class TestOnCustomerRegistered:
    async def test_a_replay_keeps_later_changes(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await apply_registrations(session, settings, [registered()])
        async with transaction(sessions) as session:
            customer = await session.get(SupportCustomer, "cust-1")
            assert customer is not None
            customer.phone = "+14155550199"

        async with transaction(sessions) as session:
            await apply_registrations(session, settings, [registered()])

        [customer] = await support_customers(sessions)
        assert customer.phone == "+14155550199"
