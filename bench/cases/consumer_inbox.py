"""Consumer throughput with inbox de-duplication: a started ConsumerRunner applying events.

Two handlers that write the same rows, in the transaction that claims the event ids in
the inbox: one called per event (one INSERT each), and a batch handler called once per
run of a fetch (one multi-row INSERT, the inbox claimed with one statement). The
baseline is plain aiokafka `getmany` reading the same topic in a fresh group (median of
a few groups, before and after the runners).
"""

import uuid

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bench import kafka_raw
from bench.core import Context, Result, mean, ratio_at_least, wait_until
from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner, Handler, batch
from rapport_events.db import create_engine, session_factory
from rapport_events.inbox import InboxEntry
from rapport_events.kafka import create_producer
from rapport_events.settings import KafkaSettings
from rapport_events.types import CustomerRegistered

NAME = "consumer-inbox"
TARGET = 0.3

BENCH_TABLES = MetaData()
APPLIED = Table(
    "bench_applied",
    BENCH_TABLES,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
)


async def record(event: CustomerRegistered, envelope: Envelope, session: AsyncSession) -> None:
    """The trivial handler: one row per applied event."""
    await session.exec(insert(APPLIED).values(event_id=envelope.id, customer_id=event.customer_id))


@batch
async def record_all(
    events: list[CustomerRegistered], envelopes: list[Envelope], session: AsyncSession
) -> None:
    """The same rows, set-based: one INSERT for the run."""
    rows = [
        {"event_id": envelope.id, "customer_id": event.customer_id}
        for event, envelope in zip(events, envelopes, strict=True)
    ]
    await session.exec(insert(APPLIED), params=rows)  # type: ignore[call-overload]


HANDLER_KINDS: dict[str, Handler] = {"per event": record, "batch": record_all}


async def run(ctx: Context) -> list[Result]:
    return [
        await measure(ctx, kind, handler)
        for kind in await ctx.database_kinds()
        for handler in HANDLER_KINDS
    ]


async def measure(ctx: Context, kind: str, handler: str = "batch") -> Result:
    sizes = ctx.sizes
    settings = await ctx.topic(f"consumer-{kind}")
    warmup = sizes.warmup
    total = warmup + sizes.consumer_events
    messages = [kafka_raw.as_message(kafka_raw.sample_cloudevent(i)) for i in range(total)]
    producer = create_producer(settings, client_id="bench-consumer-setup")
    await producer.start()
    try:
        await kafka_raw.produce(producer, settings.topic, messages, sizes.max_seconds)
    finally:
        await producer.stop()

    async def raw() -> tuple[float, list[float]]:
        return await kafka_raw.consume_rate_median(
            settings, total, warmup, sizes.repeats, sizes.max_seconds
        )

    before, before_runs = await raw()
    elapsed = await _run_consumer(ctx, kind, settings, warmup, total, HANDLER_KINDS[handler])
    after, after_runs = await raw()

    rate = sizes.consumer_events / elapsed
    return ratio_at_least(
        f"consumer + inbox, {handler} ({kind})",
        "events/s",
        rate,
        mean([before, after]),
        TARGET,
        baseline_name="raw getmany, same topic",
        notes=(
            f"{sizes.consumer_events} events of {messages[0].size} B, "
            "one transaction per partition's fetch, "
            + (
                "inbox claim + 1 insert per event"
                if handler == "per event"
                else "1 inbox insert + 1 multi-row insert per run"
            )
        ),
        details={
            "events": sizes.consumer_events,
            "seconds": elapsed,
            "baseline_runs": before_runs + after_runs,
        },
    )


async def _run_consumer(
    ctx: Context, kind: str, settings: KafkaSettings, warmup: int, total: int, handler: Handler
) -> float:
    """Seconds the runner takes to apply the records after the first `warmup`."""
    engine = create_engine(await ctx.database(kind, "consumer"))
    producer = create_producer(settings, client_id="bench-consumer-dlq")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(
                SQLModel.metadata.create_all,
                tables=[InboxEntry.__table__],  # type: ignore[attr-defined]
            )
            await connection.run_sync(BENCH_TABLES.create_all)
        await producer.start()
        runner = ConsumerRunner(
            service=f"bench-{uuid.uuid4().hex[:8]}",
            settings=settings,
            session_factory=session_factory(engine),
            handlers={CustomerRegistered: [handler]},
            producer=producer,
        )
        await runner.start()
        try:
            timeout = ctx.sizes.max_seconds
            started = await wait_until(
                lambda: runner.applied >= warmup, timeout=timeout, what="consumer warm-up"
            )
            counted_from = runner.applied
            if counted_from >= total:
                raise RuntimeError("every event applied during warm-up: raise --consumer-events")
            done = await wait_until(
                lambda: runner.applied >= total, timeout=timeout, what="consumer run"
            )
            if runner.dead_lettered or runner.duplicates:
                raise RuntimeError(
                    f"{runner.dead_lettered} dead-lettered, {runner.duplicates} duplicates"
                )
        finally:
            await runner.stop()
    finally:
        await producer.stop()
        await engine.dispose()
    # Records past `warmup` applied before `started` was seen are not in the window.
    return (done - started) * (total - warmup) / (total - counted_from)
