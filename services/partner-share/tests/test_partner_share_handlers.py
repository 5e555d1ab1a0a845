"""The customer.registered handler on a real database (SQLite and PostgreSQL)."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer
from rapport_events.types import CustomerRegistered
from rapport_partner_share.customers.models import KnownCustomer
from rapport_partner_share.customers.projection import apply_registrations
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE

PERSONAL = {
    "email": "ada@example.com",
    "phone": "+14155550100",
    "first_name": "Augusta",
    "last_name": "Lovelace",
    "city": "Marylebone",
}


def registered(**overrides: object) -> CustomerRegistered:
    values: dict[str, object] = {
        "customer_id": "cust-1",
        **PERSONAL,
        "birth_date": "1815-12-10",
        "country": "GB",
        "social_handles": {"x": "@ada"},
    }
    values.update(overrides)
    return CustomerRegistered(**values)  # type: ignore[arg-type]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    yield engine
    await engine.dispose()


async def known_customers(engine: AsyncEngine) -> list[KnownCustomer]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(KnownCustomer))).scalars().all())


async def everything_stored(engine: AsyncEngine) -> str:
    """Every row of every table, as one string to search."""
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        dumped = []
        for name in names:
            rows = await connection.execute(select(text("*")).select_from(table(name)))
            dumped.extend(repr(tuple(row)) for row in rows)
    return "\n".join(dumped)


class TestOnCustomerRegistered:
    async def test_remembers_only_the_id_and_date(self, engine: AsyncEngine) -> None:
        event = registered()
        async with transaction(session_factory(engine)) as session:
            await apply_registrations(session, [event])

        [customer] = await known_customers(engine)
        assert customer.customer_id == "cust-1"
        assert customer.registered_at.replace(tzinfo=None) == event.occurred_at.replace(tzinfo=None)

    async def test_the_same_event_twice_leaves_one_row(self, engine: AsyncEngine) -> None:
        event = registered()
        for _ in range(2):
            async with transaction(session_factory(engine)) as session:
                await apply_registrations(session, [event])

        assert len(await known_customers(engine)) == 1


class TestNoPersonalData:
    def test_the_table_has_no_personal_columns(self) -> None:
        assert set(KnownCustomer.__table__.columns.keys()) == {"customer_id", "registered_at"}

    async def test_no_table_holds_personal_data_after_a_registration(
        self, engine: AsyncEngine
    ) -> None:
        runner = ConsumerRunner(
            service="partner-share",
            settings=KafkaSettings(),
            session_factory=session_factory(engine),
            handlers=HANDLERS,
            producer=FakeProducer(),  # type: ignore[arg-type]
        )
        assert await runner.apply(
            Envelope(data=registered(), source="/services/profile"),
            HANDLERS[CustomerRegistered],
        )

        stored = await everything_stored(engine)
        assert "cust-1" in stored
        for value in PERSONAL.values():
            assert value not in stored
        assert "1815-12-10" not in stored
        assert "@ada" not in stored


class TestHandlerMap:
    async def test_the_runner_applies_a_redelivered_event_once(self, engine: AsyncEngine) -> None:
        runner = ConsumerRunner(
            service="partner-share",
            settings=KafkaSettings(),
            session_factory=session_factory(engine),
            handlers=HANDLERS,
            producer=FakeProducer(),  # type: ignore[arg-type]
        )
        envelope = Envelope(data=registered(), source="/services/profile")
        handlers = HANDLERS[CustomerRegistered]

        assert await runner.apply(envelope, handlers) is True
        assert await runner.apply(envelope, handlers) is False
        assert len(await known_customers(engine)) == 1
