"""Outbox relay throughput: rows written with outbox.add, published by OutboxRelay.

The baseline is raw aiokafka producing the very same messages (key, value and
CloudEvents headers) the same way, measured just before and just after the
relay; their mean is the divisor.
"""

import time

from sqlmodel import SQLModel

from bench import kafka_raw
from bench.core import Context, Result, mean, ratio_at_least, wait_until
from rapport_events import outbox
from rapport_events.db import SessionFactory, create_engine, session_factory, transaction
from rapport_events.kafka import create_producer
from rapport_events.outbox import OutboxMessage
from rapport_events.relay import OutboxRelay
from rapport_events.settings import KafkaSettings

NAME = "outbox-relay"
TARGET = 0.5
WRITE_CHUNK = 250  # outbox rows per writing transaction (setup, not timed)
SOURCE = "/services/bench"


async def run(ctx: Context) -> list[Result]:
    # The relay's own work on the messages the baseline sends: sealing (and the data key
    # record of each new customer, every sample event being one) is `ingest-sealing`'s.
    outbox.configure(KafkaSettings(seal_personal_fields=False))
    try:
        return [await measure(ctx, kind) for kind in await ctx.database_kinds()]
    finally:
        outbox.configure(KafkaSettings())


async def _write(sessions: SessionFactory, topic: str, first: int, count: int) -> None:
    for start in range(first, first + count, WRITE_CHUNK):
        async with transaction(sessions) as session:
            for i in range(start, min(start + WRITE_CHUNK, first + count)):
                outbox.add(session, kafka_raw.sample_event(i), source=SOURCE, topic=topic)


async def _relay_until(relay: OutboxRelay, count: int, timeout: float) -> float:
    """Start the relay, return seconds until it has published and marked `count` rows."""
    started = time.perf_counter()
    relay.start()
    try:
        done = await wait_until(
            lambda: relay.published >= count, timeout=timeout, what=f"relay of {count} rows"
        )
    finally:
        await relay.stop()
    return done - started


async def measure(ctx: Context, kind: str) -> Result:
    sizes = ctx.sizes
    settings = await ctx.topic(f"relay-{kind}")
    engine = create_engine(await ctx.database(kind, "relay"))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(
                SQLModel.metadata.create_all,
                tables=[OutboxMessage.__table__],  # type: ignore[attr-defined]
            )
        sessions = session_factory(engine)
        producer = create_producer(settings, client_id="bench-relay")
        await producer.start()
        try:
            warmup = min(sizes.warmup, settings.relay_batch_size)
            await _write(sessions, settings.topic, 0, warmup)
            await _relay_until(OutboxRelay(sessions, producer, settings), warmup, sizes.max_seconds)
            await _write(sessions, settings.topic, warmup, sizes.relay_events)

            before = await _baseline(ctx, settings)
            elapsed = await _relay_until(
                OutboxRelay(sessions, producer, settings), sizes.relay_events, sizes.max_seconds
            )
            after = await _baseline(ctx, settings)
        finally:
            await producer.stop()
    finally:
        await engine.dispose()

    message = kafka_raw.as_message(kafka_raw.sample_cloudevent(0))
    rate = sizes.relay_events / elapsed
    return ratio_at_least(
        f"outbox relay ({kind})",
        "events/s",
        rate,
        mean([before, after]),
        TARGET,
        baseline_name="raw produce, same messages",
        notes=(
            f"{sizes.relay_events} events of {message.size} B "
            f"({len(message.value)} B value + key + CloudEvents headers), "
            f"relay batch {settings.relay_batch_size}"
        ),
        details={
            "events": sizes.relay_events,
            "seconds": elapsed,
            "message_bytes": message.size,
            "value_bytes": len(message.value),
            "baseline_before": before,
            "baseline_after": after,
        },
    )


async def _baseline(ctx: Context, settings: KafkaSettings) -> float:
    topic = (await ctx.topic("relay-raw")).topic
    messages = [
        kafka_raw.as_message(kafka_raw.sample_cloudevent(i)) for i in range(ctx.sizes.relay_events)
    ]
    return await kafka_raw.produce_rate(settings, topic, messages, ctx.sizes.max_seconds)
