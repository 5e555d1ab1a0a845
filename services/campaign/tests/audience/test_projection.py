"""The audience projection a run at a time: the same result as one event at a time, and a
statement count that does not grow with the run (SQLite and PostgreSQL)."""

import inspect
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import event
from sqlmodel import col, select

from rapport_campaign.audience.models import Activity, ActivityItem, AudienceMember, ConsentState
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.journeys.models import JourneyCreate, JourneyState
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments.models import Segment, SegmentCreate, SegmentMember
from rapport_campaign.settings import Settings
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope, decode, encode
from rapport_events.consumer import ConsumerRunner, Handler, HandlerMap, batch, is_batch
from rapport_events.db import SessionFactory, create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    LineItem,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)

TOPIC = "rapport.customer-events"
PARTITION = TopicPartition(TOPIC, 0)
DatabaseFactory = Callable[[str], Awaitable[str]]

# Segments the mixed sequence enters and leaves; none reads the clock.
SEGMENTS: dict[str, dict[str, Any]] = {
    "buyers": {"metric": "orders", "op": "gte", "value": 2},
    "french": {"attribute": "country", "op": "eq", "value": "FR"},
    "reachable": {"consent": "email"},
    "browsers": {"event": "interaction.tracked", "at_least": 4},
    "carts without orders": {
        "all": [{"event": "cart.updated"}, {"event": "order.completed", "at_most": 0}]
    },
}
JOURNEYS: list[dict[str, Any]] = [
    {"trigger": "welcome", "channel": "email", "delay_minutes": 30},
    {"trigger": "abandoned_cart", "channel": "email", "delay_minutes": 60},
    {"trigger": "re_engagement", "channel": "sms", "inactivity_days": 30},
]


async def migrated(database_factory: DatabaseFactory, label: str) -> SessionFactory:
    engine = create_engine(await database_factory(label))
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    return session_factory(engine)


async def define(sessions: SessionFactory, settings: Settings) -> None:
    async with transaction(sessions) as session:
        for name, rule in SEGMENTS.items():
            await segment_service.create_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                SegmentCreate.model_validate({"name": name, "rule": rule}),
            )
        for n, journey in enumerate(JOURNEYS):
            data = {
                "name": f"journey {n}",
                "variants": [{"name": "A", "subject": "Hi", "body": "Hello"}],
                **journey,
            }
            await journey_service.create_journey(
                SqlCampaignUnitOfWork(session), JourneyCreate.model_validate(data)
            )


def mixed_events(customers: int = 20, count: int = 300, seed: int = 12) -> list[Event]:
    """Registrations first (some behaviour before them), then bursts of one type at a time."""
    rng = random.Random(seed)
    start = utcnow() + timedelta(minutes=5)
    ids = [f"c{n:02d}" for n in range(customers)]
    versions = dict.fromkeys(ids, 0)
    clock = iter(range(10_000))
    events: list[Event] = []

    def at() -> datetime:
        return start + timedelta(seconds=next(clock))

    def item() -> LineItem:
        return LineItem(product_id=f"p{rng.randint(1, 5)}", price=Decimal(rng.randint(5, 50)))

    def one(kind: str, cid: str) -> Event:
        if kind == "register":
            return CustomerRegistered(
                customer_id=cid,
                email=f"{cid}@example.com",
                first_name=cid.upper(),
                last_name="Tester",
                country=rng.choice(["FR", "DE", "GB"]),
                occurred_at=at(),
            )
        if kind == "update":
            changes: dict[str, Any] = {"country": rng.choice(["FR", "DE", None])}
            if rng.random() < 0.3:
                changes["first_name"] = rng.choice(["Ann", "Bo", None])
            return CustomerUpdated(customer_id=cid, changes=changes, occurred_at=at())
        if kind == "consent":
            versions[cid] += 1
            version = versions[cid] if rng.random() < 0.85 else max(1, versions[cid] - 2)
            kind_of = ConsentGranted if rng.random() < 0.55 else ConsentRevoked
            return kind_of(
                customer_id=cid,
                purpose="marketing",
                channel=rng.choice(["email", "sms", None]),
                source="web_form",
                version=version,
                occurred_at=at(),
            )
        if kind == "cart":
            empty = rng.random() < 0.2
            items = () if empty else (item(),)
            return CartUpdated(
                customer_id=cid,
                cart_id=f"cart-{cid}",
                action="product_removed" if empty else "product_added",
                items=items,
                value=Decimal(0) if empty else items[0].price,
                occurred_at=at(),
            )
        if kind == "order":
            return OrderCompleted(
                customer_id=cid,
                # Now and then the same order is announced twice.
                order_id=f"o-{cid}-{rng.randint(1, 6)}",
                items=(item(), item()),
                revenue=Decimal(rng.randint(10, 200)),
                occurred_at=at(),
            )
        return InteractionTracked(
            customer_id=cid,
            kind=rng.choice(["page", "search"]),
            url="https://shop.example/p",
            search_query="boots",
            occurred_at=at(),
        )

    for cid in ids:
        if rng.random() < 0.2:
            events.append(one("interaction", cid))
        events.append(one("register", cid))
    kinds = ["interaction"] * 8 + ["cart"] * 4 + ["order"] * 3 + ["consent"] * 3 + ["update"] * 2
    while len(events) < count:
        kind = rng.choice(kinds + ["register"])
        for _ in range(rng.randint(1, 25)):
            # Orders for half of them; consents and updates for a few, so that some
            # customer enters and leaves a segment within one run.
            few = {"order": ids[: customers // 2], "consent": ids[:4], "update": ids[4:8]}
            events.append(one(kind, rng.choice(few.get(kind, ids))))
    return events[:count]


def records_of(events: list[Event]) -> list[FakeRecord]:
    records = []
    for offset, e in enumerate(events):
        message = encode(Envelope(data=e, source="/services/profile"))
        records.append(
            FakeRecord(TOPIC, 0, offset, message.key, message.value, list(message.headers))
        )
    return records


def spying(handlers: HandlerMap, runs: list[list[str]]) -> HandlerMap:
    """The handler map, noting the event ids each batch handler call gets."""

    def wrap(handler: Handler) -> Handler:
        wanted = inspect.signature(handler).parameters

        @batch
        async def spy(envelopes: list[Envelope], session: Any, settings: Settings) -> None:
            runs.append([envelope.id for envelope in envelopes])
            given = {
                "events": [envelope.data for envelope in envelopes],
                "envelopes": envelopes,
                "session": session,
                "settings": settings,
            }
            await handler(**{name: given[name] for name in wanted})

        return spy

    return {
        kind: [wrap(h) if is_batch(h) else h for h in handlers_of]
        for kind, handlers_of in handlers.items()
    }


def runner(
    sessions: SessionFactory, settings: Settings, handlers: HandlerMap, **kafka: Any
) -> ConsumerRunner:
    return ConsumerRunner(
        service="campaign",
        settings=KafkaSettings(**kafka),
        session_factory=sessions,
        handlers=handlers,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": settings},
    )


async def memberships(sessions: SessionFactory) -> set[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.exec(
            select(Segment.name, SegmentMember.customer_id).join(
                Segment, col(Segment.id) == col(SegmentMember.segment_id)
            )
        )
        return set(rows.all())


async def segment_changes(
    sessions: SessionFactory, outbox: Any
) -> dict[str, list[tuple[str, str]]]:
    """Per customer: (entered/exited, segment name) in outbox order."""
    changes: dict[str, list[tuple[str, str]]] = {}
    for e in await outbox(sessions):
        if isinstance(e, SegmentEntered | SegmentExited):
            changes.setdefault(e.customer_id, []).append((type(e).__name__, e.segment_name))
    return changes


def _plain(row: Any, *drop: str) -> dict[str, Any]:
    values = row.model_dump()
    for name in drop:
        values.pop(name, None)
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.replace(tzinfo=None)
        elif isinstance(value, Decimal):
            values[name] = value.normalize()
    return values


async def state(sessions: SessionFactory) -> dict[str, Any]:
    """Every projection row, without generated ids and wall-clock times."""
    async with sessions() as session:
        audience = (await session.exec(select(AudienceMember))).all()
        consents = (await session.exec(select(ConsentState))).all()
        activity = (await session.exec(select(Activity))).all()
        items = (await session.exec(select(ActivityItem, Activity.event_id).join(Activity))).all()
        journeys = {j.id: j.name for j in (await session.exec(select(Campaign))).all()}
        timers = (await session.exec(select(JourneyState))).all()
    return {
        "audience": sorted(
            (_plain(m, "updated_at") for m in audience), key=lambda r: r["customer_id"]
        ),
        "consents": sorted(
            (_plain(c) for c in consents), key=lambda r: (r["customer_id"], r["channel"])
        ),
        "activity": sorted((_plain(a, "id") for a in activity), key=lambda r: r["event_id"]),
        "items": sorted(
            ({**_plain(i, "id", "activity_id"), "event": e} for i, e in items),
            key=lambda r: (r["event"], r["product_id"], r["price"]),
        ),
        "timers": sorted(
            (
                {**_plain(t, "updated_at", "journey_id"), "journey": journeys[t.journey_id]}
                for t in timers
            ),
            key=lambda r: (r["journey"], r["customer_id"]),
        ),
    }


def collapsed(
    snapshots: list[set[tuple[str, str]]],
    positions: dict[str, int],
    runs: list[list[str]],
    order: list[str],
    customer_of: dict[str, str],
) -> dict[str, list[tuple[str, str]]]:
    """The segment events a run at a time publishes: per run, per customer in it, what
    changed between the customer's memberships before its first event of the run and after
    its last (from the one-at-a-time path). A run holds a customer's consecutive events."""
    windows: list[tuple[int, int, str]] = []
    for run in runs:
        spots: dict[str, list[int]] = {}
        for event_id in run:
            spots.setdefault(customer_of[event_id], []).append(positions[event_id])
        windows += [(min(mine), max(mine), customer) for customer, mine in spots.items()]
    expected: dict[str, list[tuple[str, str]]] = {}
    for first, last, customer in sorted(windows):
        before = {name for name, c in snapshots[first] if c == customer}
        after = {name for name, c in snapshots[last + 1] if c == customer}
        for name in order:
            if name in after and name not in before:
                expected.setdefault(customer, []).append(("SegmentEntered", name))
            elif name in before and name not in after:
                expected.setdefault(customer, []).append(("SegmentExited", name))
    return expected


class TestARunGivesTheSameResultAsOneEventAtATime:
    async def test_a_mixed_sequence_for_twenty_customers(
        self, database_factory: DatabaseFactory, settings: Settings, outbox: Any
    ) -> None:
        single = await migrated(database_factory, "single")
        batched = await migrated(database_factory, "batched")
        for sessions in (single, batched):
            await define(sessions, settings)
        events = mixed_events()
        records = records_of(events)

        # One at a time, noting the memberships after each event.
        one_by_one = runner(single, settings, HANDLERS)
        snapshots = [await memberships(single)]
        for record in records:
            await one_by_one._handle_records(PARTITION, [record])
            snapshots.append(await memberships(single))

        # The same records in fetches of 60, noting the runs the batch handlers get.
        runs: list[list[str]] = []
        together = runner(
            batched,
            settings,
            spying(HANDLERS, runs),
            consumer_transaction_max_records=500,
            consumer_transaction_max_s=60,
        )
        for first in range(0, len(records), 60):
            await together._handle_records(PARTITION, records[first : first + 60])

        assert await state(batched) == await state(single)
        assert await memberships(batched) == snapshots[-1]
        assert max(len(run) for run in runs) >= 10

        envelopes = [decode(r.value, r.headers) for r in records]
        positions = {envelope.id: n for n, envelope in enumerate(envelopes)}
        customer_of = {e.id: e.data.customer_id for e in envelopes}  # type: ignore[attr-defined]
        singles = await segment_changes(single, outbox)
        changes = await segment_changes(batched, outbox)
        expected = collapsed(snapshots, positions, runs, list(SEGMENTS), customer_of)
        assert changes == expected
        # The sequence does enter and leave segments, and within a run at least once.
        kinds = {kind for sequence in changes.values() for kind, _ in sequence}
        assert kinds == {"SegmentEntered", "SegmentExited"}
        assert sum(map(len, singles.values())) > sum(map(len, changes.values()))

    async def test_runs_of_one_publish_exactly_what_one_event_at_a_time_does(
        self, database_factory: DatabaseFactory, settings: Settings, outbox: Any
    ) -> None:
        single = await migrated(database_factory, "single")
        applied = await migrated(database_factory, "applied")
        for sessions in (single, applied):
            await define(sessions, settings)
        records = records_of(mixed_events(customers=8, count=120, seed=3))

        one_by_one = runner(single, settings, HANDLERS)
        for record in records:
            await one_by_one._handle_records(PARTITION, [record])
        # The retry path: a fetch whose shared transaction fails is applied record by record.
        retried = runner(applied, settings, HANDLERS)
        for record in records:
            await retried._handle_record(record)

        assert await state(applied) == await state(single)
        assert await segment_changes(applied, outbox) == await segment_changes(single, outbox)


@contextmanager
def counting(sessions: SessionFactory) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = sessions.kw["bind"].sync_engine  # type: ignore[attr-defined]

    def note(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)


class TestStatementsPerRun:
    async def run_of(
        self, sessions: SessionFactory, settings: Settings, events: list[Event], offset: int
    ) -> int:
        records = records_of(events)
        for n, record in enumerate(records):
            record.offset = offset + n
        consumer = runner(
            sessions,
            settings,
            HANDLERS,
            consumer_transaction_max_records=1000,
            consumer_transaction_max_s=60,
        )
        with counting(sessions) as statements:
            await consumer._handle_records(PARTITION, records)
        assert consumer.applied == len(events)
        return len(statements)

    def interactions(self, count: int, customers: int) -> list[Event]:
        return [
            InteractionTracked(customer_id=f"c{n % customers:02d}", kind="page", url="/p")
            for n in range(count)
        ]

    async def prepared(
        self, database_factory: DatabaseFactory, settings: Settings, rule: dict[str, Any]
    ) -> SessionFactory:
        sessions = await migrated(database_factory, "count")
        async with transaction(sessions) as session:
            await segment_service.create_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                SegmentCreate.model_validate({"name": "s", "rule": rule}),
            )
        registrations: list[Event] = [
            CustomerRegistered(
                customer_id=f"c{n:02d}", email=f"c{n}@example.com", first_name="A", last_name="B"
            )
            for n in range(20)
        ]
        await self.run_of(sessions, settings, registrations, 0)
        return sessions

    async def test_10_and_200_interactions_cost_the_same_when_no_segment_is_affected(
        self, database_factory: DatabaseFactory, settings: Settings
    ) -> None:
        sessions = await self.prepared(database_factory, settings, {"consent": "email"})

        ten = await self.run_of(sessions, settings, self.interactions(10, 10), 100)
        two_hundred = await self.run_of(sessions, settings, self.interactions(200, 20), 200)

        assert two_hundred == ten

    async def test_with_a_segment_on_behaviour_at_most_one_more_per_affected_customer(
        self, database_factory: DatabaseFactory, settings: Settings
    ) -> None:
        rule = {"event": "interaction.tracked", "at_least": 3}
        sessions = await self.prepared(database_factory, settings, rule)

        ten = await self.run_of(sessions, settings, self.interactions(10, 10), 100)
        two_hundred = await self.run_of(sessions, settings, self.interactions(200, 20), 200)

        assert two_hundred <= ten + 20
