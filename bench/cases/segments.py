"""Segments on campaign: computing one over 100k (full: 1M) profiles, and membership latency.

Computation: the audience projection is filled with N profiles by bulk insert (loading
them through the log would measure the consumer, which consumer-inbox does), then
POST /segments on the real app computes the members and writes one segment.entered
per member to the outbox. The baseline is the same rule written by hand as one SQL
count on the same table in the same run; the ratio is profiles/s against it.

Latency: with the app running on the broker, an order.completed is published for a
customer with no orders, and the time until campaign's segment.entered for that
customer is read back from the log is one sample. The baseline is a raw produce ->
consume round trip on the same broker; the product target is 250 ms p99.
"""

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from bench.core import Context, Result, Sizes, p50_p99, ratio_at_least, value_at_most, wait_until
from rapport_campaign.audience.models import AudienceMember
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_campaign.settings import Settings
from rapport_events.codec import Envelope, decode, encode
from rapport_events.db import create_engine
from rapport_events.kafka import create_producer
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.types import LineItem, OrderCompleted, SegmentEntered

NAME = "segments"
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUICK_PROFILES = 100_000
FULL_PROFILES = 1_000_000
INSERT_BATCH = 5_000
COMPUTE_TARGET = 0.02  # at least 1/50 of a hand-written SQL count, members and events included
P99_TARGET_MS = 250.0
COUNTRIES = ("FR", "DE", "BE", "ES", "IT", "NL", "PT", "PL", "SE", "DK")
# France and two or more orders: about 5% of the profiles.
RULE = {
    "all": [
        {"attribute": "country", "op": "eq", "value": "FR"},
        {"metric": "orders", "op": "gte", "value": 2},
    ]
}
BASELINE_SQL = "SELECT count(*) FROM campaign_audience WHERE lower(country) = 'fr' AND orders >= 2"
# Only the latency customers live in this city, so the segment starts empty.
LATENCY_CITY = "Latencyville"
LATENCY_RULE = {
    "all": [
        {"attribute": "city", "op": "eq", "value": LATENCY_CITY},
        {"metric": "orders", "op": "gte", "value": 1},
    ]
}


def profiles_for(sizes: Sizes) -> int:
    quick = sizes.consumer_events < Sizes.full().consumer_events
    default = QUICK_PROFILES if quick else FULL_PROFILES
    return int(os.environ.get("BENCH_SEGMENT_PROFILES", default))


def samples_for(sizes: Sizes) -> int:
    return max(20, min(200, sizes.consumer_events // 2))


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for kind in await ctx.database_kinds():
        results.extend(await measure(ctx, kind))
    return results


async def measure(ctx: Context, kind: str) -> list[Result]:
    profiles = profiles_for(ctx.sizes)
    samples = samples_for(ctx.sizes)
    database_url = await ctx.database(kind, "segments")
    kafka = await ctx.topic(f"segments-{kind}")
    loaded = await _load_profiles(database_url, profiles, samples)
    app = create_app(
        Settings(
            database_url=database_url,
            api_token=TOKEN,
            kafka=kafka,
            segment_refresh_interval_s=3600,
            worker_interval_s=1.0,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://campaign") as http:
            await wait_until(
                lambda: _ready(http), timeout=ctx.sizes.max_seconds, what="campaign ready"
            )
            computed = await _compute(http, database_url, profiles)
            await _drain(app, ctx.sizes.max_seconds * 4)
            latency = await _latency(ctx, http, kafka, samples)
    compute_result = ratio_at_least(
        f"segment computation ({kind})",
        "profiles/s",
        profiles / computed["seconds"],
        profiles / computed["baseline_seconds"],
        COMPUTE_TARGET,
        baseline_name="the rule as one hand-written SQL count, same table",
        notes=(
            f"{profiles} profiles, {computed['members']} members: "
            f"{computed['seconds']:.2f} s (SQL count {computed['baseline_seconds'] * 1000:.0f} ms,"
            f" bulk load {loaded:.1f} s)"
        ),
        details={"profiles": profiles, **computed, "load_seconds": loaded},
    )
    p50, p99 = p50_p99(latency["samples_ms"])
    raw_p50, raw_p99 = p50_p99(latency["baseline_ms"])
    latency_result = value_at_most(
        f"segment membership after an order ({kind})",
        "ms p99",
        p99,
        raw_p99,
        P99_TARGET_MS,
        baseline_name="raw produce -> consume round trip p99",
        notes=(
            f"{len(latency['samples_ms'])} orders one at a time, order.completed published -> "
            f"segment.entered read: p50 {p50:.0f} ms (raw round trip p50 {raw_p50:.0f} ms), "
            f"{profiles} profiles in the audience"
        ),
        details={"p50_ms": p50, "raw_p50_ms": raw_p50, **latency},
    )
    return [compute_result, latency_result]


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


def _latency_customer(n: int) -> str:
    return f"b{4 * n:08}"  # index % 4 == 0: no orders yet


def _profile(index: int, registered_at: datetime, samples: int) -> dict[str, Any]:
    orders = index % 4
    latency = orders == 0 and index <= 4 * samples
    revenue = Decimal(orders * 40)
    return {
        "customer_id": f"b{index:08}",
        "email": f"b{index:08}@bench.example",
        "first_name": "Bench",
        "last_name": f"Profile {index}",
        "country": COUNTRIES[(index // 4) % len(COUNTRIES)],
        "city": LATENCY_CITY if latency else "Elsewhere",
        "acquisition_channel": "search",
        "registered_at": registered_at,
        "social_handles": {},
        "orders": orders,
        "revenue": revenue,
        "average_order_value": Decimal(40) if orders else Decimal(0),
        "lifetime_value": revenue,
        "tier": "bronze" if orders else "none",
        "last_order_at": registered_at + timedelta(days=1) if orders else None,
        "last_active_at": registered_at + timedelta(days=1),
        "loyalty_points": 0,
        "updated_at": registered_at,
    }


async def _load_profiles(database_url: str, profiles: int, samples: int) -> float:
    """Migrate and bulk-insert the projection; returns the seconds the insert took."""
    table = AudienceMember.__table__  # type: ignore[attr-defined]
    registered_at = datetime.now(UTC) - timedelta(days=400)
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    started = time.perf_counter()
    try:
        for first in range(0, profiles, INSERT_BATCH):
            last = min(first + INSERT_BATCH, profiles)
            rows = [_profile(i, registered_at, samples) for i in range(first, last)]
            async with engine.begin() as connection:
                await connection.execute(table.insert(), rows)
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _compute(http: httpx.AsyncClient, database_url: str, profiles: int) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        baseline_runs = []
        for _ in range(3):
            async with engine.connect() as connection:
                started = time.perf_counter()
                expected = (await connection.execute(text(BASELINE_SQL))).scalar_one()
                baseline_runs.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    started = time.perf_counter()
    reply = await http.post(
        "/segments", json={"name": "France, 2+ orders", "rule": RULE}, headers=AUTH
    )
    seconds = time.perf_counter() - started
    if reply.status_code != 201:
        raise RuntimeError(f"POST /segments: {reply.status_code} {reply.text[:300]}")
    members = reply.json()["member_count"]
    if members != expected:
        raise RuntimeError(f"segment has {members} members, the SQL count says {expected}")
    return {
        "seconds": seconds,
        "members": members,
        "baseline_seconds": sorted(baseline_runs)[1],
        "baseline_runs": baseline_runs,
    }


async def _drain(app: Any, timeout: float) -> None:
    """Wait until the relay has published the segment.entered events of the computation."""

    async def empty() -> bool:
        relay = app.state.runtime.relay
        return relay is not None and (await relay.backlog())[0] == 0

    await wait_until(empty, timeout=timeout, what="outbox drained", interval=0.1)


class LogReader:
    """Reads a topic from its start and notes when each awaited key shows up."""

    def __init__(self, settings: KafkaSettings, match: Any) -> None:
        self.consumer = AIOKafkaConsumer(
            settings.topic,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=f"bench-segments-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=5,  # the reader's own wait must not hide in the samples
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )
        self.match = match
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=1000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    key = self.match(record)
                    if key is not None:
                        self.seen.setdefault(key, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


def _entered(segment_id: str) -> Any:
    def match(record: Any) -> str | None:
        if dict(record.headers or []).get("ce_type") != SegmentEntered.TYPE.encode():
            return None
        envelope = decode(record.value, record.headers)
        event = envelope.data
        if isinstance(event, SegmentEntered) and event.segment_id == segment_id:
            return event.customer_id
        return None

    return match


async def _round_trip(
    producer: Any,
    topic: str,
    message: dict[str, Any],
    reader: LogReader,
    awaited: str,
    timeout: float,
    what: str,
) -> float:
    """Milliseconds from sending `message` until `reader` has seen the key it awaits."""
    started = time.perf_counter()
    await producer.send_and_wait(topic, **message)
    await wait_until(lambda: awaited in reader.seen, timeout=timeout, what=what, interval=0.001)
    return (reader.seen[awaited] - started) * 1000


async def _latency(
    ctx: Context, http: httpx.AsyncClient, kafka: KafkaSettings, samples: int
) -> dict[str, Any]:
    reply = await http.post(
        "/segments", json={"name": "Buyers", "rule": LATENCY_RULE}, headers=AUTH
    )
    if reply.status_code != 201:
        raise RuntimeError(f"POST /segments: {reply.status_code} {reply.text[:300]}")
    segment_id = reply.json()["id"]
    timeout = ctx.sizes.max_seconds
    producer = create_producer(kafka, client_id="bench-segments")
    reader = LogReader(kafka, _entered(segment_id))
    raw = await ctx.topic("segments-rtt")
    raw_reader = LogReader(raw, lambda record: record.key.decode() if record.key else None)
    await producer.start()
    await reader.start()
    await raw_reader.start()
    try:
        measured = []
        for n in range(samples + 1):  # the first one warms up the reader's group join
            customer_id = _latency_customer(n)
            order = OrderCompleted(
                customer_id=customer_id,
                order_id=f"bench-{n}",
                items=(LineItem(product_id="p-1", name="Boots", price=Decimal("40")),),
                revenue=Decimal("40"),
            )
            message = encode(Envelope(data=order, source="/bench"))
            sent = {"value": message.value, "key": message.key, "headers": message.headers}
            took = await _round_trip(
                producer, kafka.topic, sent, reader, customer_id, timeout, "segment.entered"
            )
            if n:
                measured.append(took)
        baseline = []
        for n in range(samples + 1):
            key = f"rtt-{n}"
            sent = {"value": b"{}", "key": key.encode()}
            took = await _round_trip(producer, raw.topic, sent, raw_reader, key, timeout, "raw")
            if n:
                baseline.append(took)
    finally:
        await raw_reader.stop()
        await reader.stop()
        await producer.stop()
    return {"samples_ms": measured, "baseline_ms": baseline}
