"""Profile's projection applied a run at a time: the same rows as one event at a time,
a constant number of statements per run. Who owns a run's ids: `identity/test_store.py`."""

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from aiokafka import TopicPartition
from profile_testing import DAY, LIVE, SUBJECTS, migrated, seed, statements
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from rapport_events.base import Event
from rapport_events.codec import Envelope, encode
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory, session_factory, transaction
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.types import (
    CartUpdated,
    CustomerErased,
    CustomerRegistered,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    PartnerDataDisclosed,
    SegmentEntered,
    SegmentExited,
)
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.customers.models import SegmentMembership
from rapport_profile.handlers import HANDLERS
from rapport_profile.settings import Settings
from rapport_profile.timeline.models import Disclosure, TimelineEntry
from rapport_profile.timeline.store import SqlTimelineStore

TOPIC = "rapport.test-profile-projection"
PARTITION = TopicPartition(TOPIC, 0)


def runner_on(sessions: SessionFactory, per_transaction: int = 500) -> ConsumerRunner:
    settings = KafkaSettings(
        topic=TOPIC,
        consumer_transaction_max_records=per_transaction,
        consumer_transaction_max_s=30.0,  # cut by count here, not by a slow machine
    )
    return ConsumerRunner(
        service="profile",
        settings=settings,
        session_factory=sessions,
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": Settings(environment="development", kafka=settings)},
    )


def records_of(events: list[Event], first_offset: int = 0) -> list[FakeRecord]:
    records = []
    for offset, item in enumerate(events, start=first_offset):
        message = encode(Envelope(data=item, source="/services/test"))
        records.append(FakeRecord(TOPIC, 0, offset, message.key, message.value, message.headers))
    return records


def mixed_events(count: int = 300) -> list[Event]:
    """Registrations, then a seeded mix of every hot type, one erasure and a repeated order."""
    pick = random.Random(12)
    events: list[Event] = [
        CustomerRegistered(customer_id=c, email=f"{c}@example.com", first_name="F", last_name="L")
        for c in LIVE
    ]
    makers = [
        lambda c, at, n: InteractionTracked(
            customer_id=c, occurred_at=at, kind="page", name=f"p{n}"
        ),
        lambda c, at, n: InteractionTracked(customer_id=c, occurred_at=at, kind="track", name="x"),
        lambda c, at, n: CartUpdated(
            customer_id=c, occurred_at=at, cart_id=f"k{n}", action="cart_viewed"
        ),
        lambda c, at, n: OrderCompleted(
            customer_id=c,
            occurred_at=at,
            order_id=f"o-{pick.randrange(40)}",  # ids repeat: each counts once
            items=(LineItem(product_id="sku", price=Decimal("5"), quantity=n % 3 + 1),),
            revenue=Decimal(f"{n}.25"),
            cost=Decimal("2.10") if n % 2 else None,
        ),
        lambda c, at, n: LoyaltyPointsEarned(
            customer_id=c,
            occurred_at=at,
            program="club",
            points=n % 7 + 1,
            balance=500 + n if n % 5 == 0 else None,
        ),
        lambda c, at, n: SegmentEntered(
            customer_id=c, occurred_at=at, segment_id=f"s-{n % 3}", segment_name=f"S{n}"
        ),
        lambda c, at, n: SegmentExited(
            customer_id=c, occurred_at=at, segment_id=f"s-{n % 3}", segment_name=f"S{n}"
        ),
        lambda c, at, n: PartnerDataDisclosed(
            customer_id=c,
            occurred_at=at,
            partner_id="p-1",
            partner_ref=f"r-{c}",
            slices=("contact",),
            fields=("email",),
            consent_version=n,
        ),
    ]
    n = 0
    while len(events) < count - 2:
        n += 1
        at = DAY + timedelta(minutes=n, seconds=pick.randrange(60))
        maker = pick.choice(makers)
        # Same type in a row sometimes, so runs longer than one form.
        for _ in range(pick.choice([1, 1, 2, 4])):
            events.append(maker(pick.choice(SUBJECTS), at, n))
    del events[count - 2 :]
    events.insert(150, CustomerErased(customer_id="c-7"))
    events.append(
        OrderCompleted(
            customer_id="old-1",
            occurred_at=DAY,
            order_id="o-before",
            items=(LineItem(product_id="sku", price=Decimal("99")),),
            revenue=Decimal("99"),
        )
    )
    return events


async def rows(sessions: SessionFactory) -> dict[str, list[dict[str, Any]]]:
    """Every row the projection writes, without the times it was written at."""
    tables: list[tuple[type[SQLModel], set[str]]] = [
        (TimelineEntry, {"recorded_at"}),
        (Order, set()),
        (CustomerMetrics, {"updated_at"}),
        (SegmentMembership, set()),
        (Disclosure, set()),
    ]
    found = {}
    async with transaction(sessions) as session:
        for model, unstable in tables:
            result = await session.exec(select(model))
            dumped = [row.model_dump(exclude=unstable) for row in result.all()]
            found[model.__name__] = sorted(dumped, key=lambda row: repr(sorted(row.items())))
    return found


class TestBatchesApplyAsSingleEvents:
    async def test_a_mixed_sequence_gives_the_same_rows_in_runs_as_one_by_one(
        self, database_factory: Any
    ) -> None:
        events = mixed_events()
        records = records_of(events)
        batched = await migrated(await database_factory("batched"))
        single = await migrated(await database_factory("single"))
        try:
            for engine in (batched, single):
                await seed(session_factory(engine))
            in_runs = runner_on(session_factory(batched))
            one_by_one = runner_on(session_factory(single))

            await in_runs._handle_records(PARTITION, records)  # type: ignore[arg-type]
            for record in records:
                await one_by_one._handle_record(record)  # type: ignore[arg-type]

            assert in_runs.applied == one_by_one.applied == len(events)
            assert in_runs.dead_lettered == one_by_one.dead_lettered == 0
            expected = await rows(session_factory(single))
            assert await rows(session_factory(batched)) == expected
        finally:
            await batched.dispose()
            await single.dispose()
        # The sequence did exercise what it is meant to.
        orders = {row["order_id"]: row for row in expected["Order"]}
        assert orders["o-before"]["revenue"] == Decimal("10.00")
        subjects = {row["subject_id"] for row in expected["TimelineEntry"]}
        assert subjects >= {"old-1", "old-2"}
        assert not subjects & {"anon-9", "gone-3", "c-9", "c-unknown-erased"}
        assert expected["SegmentMembership"] and expected["Disclosure"]
        assert any(m["loyalty_points"] for m in expected["CustomerMetrics"])


class TestStatementsPerRun:
    async def test_ten_or_two_hundred_interactions_cost_the_same_statements(
        self, engine: AsyncEngine
    ) -> None:
        sessions = session_factory(engine)
        await seed(sessions)
        runner = runner_on(sessions)

        def interactions(count: int, first: int) -> list[FakeRecord]:
            return records_of(
                [
                    InteractionTracked(customer_id=SUBJECTS[n % len(SUBJECTS)], kind="page")
                    for n in range(count)
                ],
                first,
            )

        with statements(engine) as ten:
            await runner._handle_records(PARTITION, interactions(10, 0))  # type: ignore[arg-type]
        with statements(engine) as two_hundred:
            await runner._handle_records(PARTITION, interactions(200, 10))  # type: ignore[arg-type]

        assert runner.applied == 210
        assert len(two_hundred) == len(ten)
        async with transaction(sessions) as session:
            assert await SqlTimelineStore(session).has_timeline("c-1")
