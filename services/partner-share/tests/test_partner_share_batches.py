"""The consented projection in runs: the batch path writes what one event at a time writes,
with a number of statements that does not grow with the run (SQLite and PostgreSQL)."""

import json
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
from rapport_events.db import create_engine, session_factory, transaction
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
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.customers.models import ErasedCustomer, KnownCustomer
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.slices import rules
from rapport_partner_share.slices.models import MatchKey, SharedSlice

TOPIC = "rapport.partner-share-batches"
PARTITION = TopicPartition(TOPIC, 0)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ALL_SLICES = ["contact", "demographics", "purchase_summary", "segments", "loyalty"]
# Each table as the projection leaves it, without the moments it stamps with the clock.
TABLES = {
    KnownCustomer: (),
    PartnerConsent: ("changed_at", "fill_next_at"),
    SharedSlice: ("updated_at",),
    MatchKey: (),
    Notification: ("id", "created_at", "next_attempt_at", "body"),
    ErasedCustomer: ("erased_at",),
}


def partners() -> list[Partner]:
    def partner(partner_id: str, slices: list[str], **extra: Any) -> Partner:
        return Partner(
            id=partner_id,
            name=partner_id,
            industry="retail",
            slices=slices,
            purposes=["marketing"],
            webhook_secret="s" * 32,
            ref_key=partner_id.encode().hex().ljust(64, "0"),
            rate_limit_per_second=10.0,
            rate_limit_burst=10,
            created_at=START,
            **extra,
        )

    return [
        partner("p-all", ALL_SLICES, webhook_url="http://partner.invalid/hook"),
        partner("p-events", ["purchase_summary", "segments", "loyalty"]),
        partner("p-gone", ALL_SLICES, deleted_at=START),
    ]


def mixed_events(count: int = 300, customers: int = 20, seed: int = 7) -> list[Event]:
    """Consents given, narrowed and revoked (some late), with profile changes, orders,
    segment moves and points between them, a merge and an erasure, in log order."""
    rng = random.Random(seed)
    ids = [f"cust-{n:02d}" for n in range(customers)]
    versions = dict.fromkeys(ids, 0)
    events: list[Event] = [registered(customer_id) for customer_id in ids]
    while len(events) < count:
        n = len(events)
        customer_id = rng.choice(ids)
        at = START + timedelta(minutes=n)
        roll = rng.random()
        if n == count // 3:
            events.append(
                CustomerMerged(customer_id=ids[0], merged_customer_id=ids[1], reason="email")
            )
        elif n == 2 * count // 3:
            events.append(CustomerErased(customer_id=ids[2], occurred_at=at))
        elif roll < 0.25:
            versions[customer_id] += 1
            version = max(1, versions[customer_id] - (rng.random() < 0.15))
            kind = ConsentGranted if rng.random() < 0.65 else ConsentRevoked
            chosen = rng.sample(ALL_SLICES, rng.randint(0 if kind is ConsentRevoked else 1, 5))
            events.append(
                kind(
                    customer_id=customer_id,
                    purpose="partner_sharing",
                    partner_id=rng.choice(["p-all", "p-events", "p-gone"]),
                    slices=tuple(chosen),  # type: ignore[arg-type]
                    source="web_form",
                    version=version,
                    occurred_at=at,
                )
            )
        elif roll < 0.4:
            changes = rng.choice(
                [
                    {"email": f"{customer_id}+{n}@x.com"},
                    {"phone": f"+44 20 7946 0{n % 1000:03d}", "city": "Leeds"},
                    {"birth_date": "1990-05-01", "first_name": "Ada"},
                ]
            )
            events.append(CustomerUpdated(customer_id=customer_id, changes=changes, occurred_at=at))
        elif roll < 0.6:
            events.append(
                OrderCompleted(
                    customer_id=customer_id,
                    order_id=f"ord-{rng.randrange(150)}",
                    items=(LineItem(product_id="p", price=Decimal("5")),),
                    revenue=Decimal(rng.randrange(1, 90)),
                    currency=rng.choice(["EUR", "GBP"]),
                    occurred_at=at,
                )
            )
        elif roll < 0.8:
            kind_of = SegmentEntered if rng.random() < 0.6 else SegmentExited
            segment = rng.choice(["vip", "lapsed", "new"])
            late = timedelta(hours=2) if rng.random() < 0.1 else timedelta(0)
            events.append(
                kind_of(
                    customer_id=customer_id,
                    segment_id=segment,
                    segment_name=segment.upper(),
                    occurred_at=at - late,
                )
            )
        else:
            events.append(
                LoyaltyPointsEarned(
                    customer_id=customer_id,
                    program=rng.choice(["stars", "miles"]),
                    points=rng.randrange(1, 50),
                    balance=rng.choice([None, rng.randrange(1000)]),
                    occurred_at=at,
                )
            )
    return events


def registered(customer_id: str) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id, email=f"{customer_id}@x.com", first_name="A", last_name="B"
    )


def records_of(events: list[Event]) -> list[FakeRecord]:
    messages = [encode(Envelope(data=e, source="/services/profile")) for e in events]
    return [
        FakeRecord(TOPIC, 0, offset, m.key, m.value, list(m.headers))
        for offset, m in enumerate(messages)
    ]


def make_runner(engine: AsyncEngine) -> ConsumerRunner:
    return ConsumerRunner(
        service="partner-share",
        # Runs here are cut by count, not by a slow machine.
        settings=KafkaSettings(topic=TOPIC, consumer_transaction_max_s=60.0),
        session_factory=session_factory(engine),
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
    )


def filled(customer_id: str, partner: Partner) -> list[PartnerConsent | SharedSlice]:
    """A consent to every slice whose profile fill completed, as the filler leaves it."""
    consent = PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=security.pseudonym(partner.ref_key, customer_id),
        granted=True,
        slices=ALL_SLICES,
        granted_at=START,
        changed_at=START,
    )
    data = {
        "contact": rules.from_profile("contact", {"email": f"{customer_id}@x.com"}),
        "demographics": rules.from_profile("demographics", {"city": "York"}),
        **{name: rules.empty(name, START) for name in sorted(rules.STARTS_EMPTY)},
    }
    return [consent] + [
        SharedSlice(
            customer_id=customer_id, partner_id=partner.id, slice=name, data=value, updated_at=START
        )
        for name, value in data.items()
    ]


async def migrated(database_factory: DatabaseFactory, label: str) -> AsyncEngine:
    engine = create_engine(await database_factory(label))
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    async with transaction(session_factory(engine)) as session:
        sharing = partners()
        session.add_all(sharing)
        await session.flush()
        for n in range(10, 16):
            session.add_all(filled(f"cust-{n:02d}", sharing[0]))
    return engine


async def projection_rows(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted, without clock-stamped columns."""
    dumped = {}
    async with engine.connect() as connection:
        for model, skipped in TABLES.items():
            table = model.__table__  # type: ignore[attr-defined]
            columns = [c for c in table.columns if c.name not in skipped]
            rows = [
                tuple(map(_comparable, row)) for row in await connection.execute(select(*columns))
            ]
            if model is Notification:
                bodies = await connection.execute(select(table.c.body))
                rows = [row + (_notice(body),) for row, (body,) in zip(rows, bodies, strict=True)]
            dumped[table.name] = sorted(rows, key=repr)
    return dumped


def _notice(body: str) -> str:
    payload = json.loads(body)
    return json.dumps({k: v for k, v in payload.items() if k not in ("id", "occurred_at")})


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
        self, engines: list[AsyncEngine]
    ) -> None:
        records = records_of(mixed_events())
        records += records_of(mixed_events(60, seed=8))  # replays under new event ids
        single, batched = engines
        one_by_one, together = make_runner(single), make_runner(batched)

        await feed_both_ways(one_by_one, together, records, PARTITION)

        expected = await projection_rows(single)
        assert await projection_rows(batched) == expected
        # The sequence exercises every rule: grants, revocations with notices, each slice.
        assert all(expected[name] for name in expected), {k: len(v) for k, v in expected.items()}
        assert {row[2] for row in expected["partner_share_slices"]} == set(ALL_SLICES)
        assert together.applied == one_by_one.applied == len(records)
        assert together.dead_lettered == one_by_one.dead_lettered == 0


class TestStatementsPerRun:
    async def test_10_or_200_registrations_cost_the_same_statements(
        self, engines: list[AsyncEngine]
    ) -> None:
        engine = engines[1]
        runner = make_runner(engine)
        counts = []
        for size, prefix in ((10, "small"), (200, "large")):
            events: list[Event] = [registered(f"{prefix}-{n}") for n in range(size)]
            with statements_on(engine) as seen:
                await runner._handle_records(PARTITION, records_of(events))  # type: ignore[arg-type]
            counts.append(len(seen))

        assert counts[0] == counts[1], counts
        async with engine.connect() as connection:
            stored = await connection.execute(select(KnownCustomer.__table__.c.customer_id))  # type: ignore[attr-defined]
            assert len(stored.all()) == 210

    async def test_10_or_200_orders_of_sharing_customers_cost_the_same_statements(
        self, engines: list[AsyncEngine]
    ) -> None:
        engine = engines[1]
        runner = make_runner(engine)
        grants: list[Event] = [
            ConsentGranted(
                customer_id=f"c-{n}",
                purpose="partner_sharing",
                partner_id="p-events",
                slices=("purchase_summary",),
                source="web_form",
                version=1,
                occurred_at=START,
            )
            for n in range(200)
        ]
        await runner._handle_records(PARTITION, records_of(grants))  # type: ignore[arg-type]
        counts = []
        for size in (10, 200):
            orders: list[Event] = [
                OrderCompleted(
                    customer_id=f"c-{n}",
                    order_id=f"o-{size}-{n}",
                    items=(LineItem(product_id="p", price=Decimal("5")),),
                    revenue=Decimal("5"),
                )
                for n in range(size)
            ]
            with statements_on(engine) as seen:
                await runner._handle_records(PARTITION, records_of(orders))  # type: ignore[arg-type]
            counts.append(len(seen))

        assert counts[0] == counts[1], counts
