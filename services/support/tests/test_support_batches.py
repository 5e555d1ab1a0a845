"""Support's projection in runs: the batch path writes what one event at a time writes, with a
number of statements that does not grow with the run (SQLite and PostgreSQL)."""

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.base import Event
from rapport_events.codec import Envelope, encode
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.batches import feed_both_ways, statements_on
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    LineItem,
    OrderCompleted,
)
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.handlers import HANDLERS
from rapport_support.main import MIGRATIONS, VERSION_TABLE
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings

TOPIC = "rapport.support-batches"
PARTITION = TopicPartition(TOPIC, 0)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# Each table as the projection leaves it, without the row ids the database picks.
TABLES = {
    SupportCustomer: (),
    SupportConsent: ("id",),
    SupportHandle: (),
    SupportProduct: ("id",),
    SupportMergedCustomer: (),
    ErasedCustomer: (),
}


def mixed_events(count: int = 300, customers: int = 20, seed: int = 12) -> list[Event]:
    """Registrations, updates, consents and orders of `customers`, with a few merges,
    an erasure, replays and late (older) versions, in log order."""
    rng = random.Random(seed)
    ids = [f"cust-{n:02d}" for n in range(customers)]
    versions = dict.fromkeys(ids, 0)
    events: list[Event] = [registered(customer_id, rng) for customer_id in ids[: customers // 2]]
    while len(events) < count:
        n = len(events)
        customer_id = rng.choice(ids)
        at = START + timedelta(minutes=n)
        roll = rng.random()
        if n in (count // 3, 2 * count // 3):
            events.append(
                CustomerMerged(
                    customer_id=ids[n % 5], merged_customer_id=ids[10 + n % 7], reason="email"
                )
            )
        elif n == count // 2:
            events.append(CustomerErased(customer_id=ids[3], occurred_at=at))
        elif roll < 0.15:
            events.append(registered(customer_id, rng, at))
        elif roll < 0.4:
            events.append(updated(customer_id, rng, at))
        elif roll < 0.6:
            versions[customer_id] += 1
            # Now and then a late copy of an older version, which must change nothing.
            version = max(1, versions[customer_id] - (rng.random() < 0.2))
            kind = ConsentGranted if rng.random() < 0.6 else ConsentRevoked
            events.append(
                kind(
                    customer_id=customer_id,
                    purpose=rng.choice(["marketing", "analytics"]),
                    channel=rng.choice(["email", "sms", None]),
                    source="web_form",
                    version=version,
                    occurred_at=at,
                )
            )
        else:
            events.append(order(customer_id, rng, at, f"ord-{rng.randrange(200)}"))
    return events


def registered(customer_id: str, rng: random.Random, at: datetime = START) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        email=f"{customer_id}@example.com",
        first_name="Ada",
        last_name=f"Number {rng.randrange(100)}",
        phone="+14155550100",
        country="GB",
        social_handles={"x": f"@{customer_id}", "instagram": f"@ig{rng.randrange(30)}"},
        occurred_at=at,
    )


def updated(customer_id: str, rng: random.Random, at: datetime) -> CustomerUpdated:
    changes: dict[str, Any] = rng.choice(
        [
            {"email": f"{customer_id}+{rng.randrange(9)}@example.com"},
            {"city": rng.choice(["Leeds", "York", None]), "tier": "gold"},
            {"first_name": None, "last_name": "Byron"},
            {"social_handles": {"x": f"@{customer_id}-{rng.randrange(3)}"}},
        ]
    )
    # Some changes arrive after newer ones were applied: they must change nothing.
    late = timedelta(hours=1) if rng.random() < 0.15 else timedelta(0)
    return CustomerUpdated(customer_id=customer_id, changes=changes, occurred_at=at - late)


def order(customer_id: str, rng: random.Random, at: datetime, order_id: str) -> OrderCompleted:
    items = [
        LineItem(product_id="p-1", product_model="Barista X2", price=Decimal("199.00")),
        LineItem(product_id="p-2", name="Beans", price=Decimal("9.50")),
        LineItem(product_id="p-3", category="laptops", serial_number="SN-1", price=Decimal(999)),
    ]
    return OrderCompleted(
        customer_id=customer_id,
        order_id=order_id,
        items=tuple(rng.sample(items, rng.randint(1, 3))),
        revenue=Decimal("100.00"),
        occurred_at=at,
    )


def records_of(events: list[Event]) -> list[FakeRecord]:
    messages = [encode(Envelope(data=e, source="/services/profile")) for e in events]
    return [
        FakeRecord(TOPIC, 0, offset, m.key, m.value, list(m.headers))
        for offset, m in enumerate(messages)
    ]


def make_runner(sessions: SessionFactory, settings: Settings) -> ConsumerRunner:
    return ConsumerRunner(
        service="support",
        # Runs here are cut by count, not by a slow machine.
        settings=KafkaSettings(topic=TOPIC, consumer_transaction_max_s=60.0),
        session_factory=sessions,
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": settings},
    )


async def migrated(database_factory: DatabaseFactory, label: str) -> AsyncEngine:
    engine = create_engine(await database_factory(label))
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    return engine


async def projection_rows(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted, without database-chosen ids."""
    dumped = {}
    async with engine.connect() as connection:
        for model, skipped in TABLES.items():
            table = model.__table__  # type: ignore[attr-defined]
            columns = [c for c in table.columns if c.name not in skipped]
            rows = (await connection.execute(select(*columns))).all()
            dumped[table.name] = sorted((tuple(map(_comparable, row)) for row in rows), key=repr)
    return dumped


def _comparable(value: Any) -> Any:
    # SQLite hands datetimes back without their zone.
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


@pytest.fixture
async def engines(database_factory: DatabaseFactory) -> AsyncIterator[list[AsyncEngine]]:
    made = [await migrated(database_factory, "single"), await migrated(database_factory, "batch")]
    yield made
    for engine in made:
        await engine.dispose()


class TestRunsWriteWhatSingleEventsWrite:
    async def test_300_mixed_events_leave_the_same_rows_both_ways(
        self, engines: list[AsyncEngine], settings: Settings
    ) -> None:
        records = records_of(mixed_events())
        records += records_of(mixed_events(40, seed=13))  # replays under new event ids
        single, batched = engines
        one_by_one = make_runner(session_factory(single), settings)
        together = make_runner(session_factory(batched), settings)

        await feed_both_ways(one_by_one, together, records, PARTITION)

        expected = await projection_rows(single)
        assert await projection_rows(batched) == expected
        # The sequence exercises every rule: merges, an erasure, handles, consents, orders.
        assert all(expected[name] for name in expected), {k: len(v) for k, v in expected.items()}
        assert together.applied == one_by_one.applied == len(records)
        assert together.dead_lettered == one_by_one.dead_lettered == 0


class TestStatementsPerRun:
    async def test_10_or_200_registrations_cost_the_same_statements(
        self, engines: list[AsyncEngine], settings: Settings
    ) -> None:
        engine = engines[1]
        runner = make_runner(session_factory(engine), settings)
        rng = random.Random(1)
        counts = []
        for size, prefix in ((10, "small"), (200, "large")):
            events: list[Event] = [registered(f"{prefix}-{n}", rng) for n in range(size)]
            with statements_on(engine) as seen:
                await runner._handle_records(PARTITION, records_of(events))  # type: ignore[arg-type]
            counts.append(len(seen))

        assert counts[0] == counts[1], counts
        async with engine.connect() as connection:
            stored = await connection.execute(select(SupportCustomer.__table__.c.customer_id))  # type: ignore[attr-defined]
            assert len(stored.all()) == 210
