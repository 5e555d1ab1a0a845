"""Replay: a campaign projection rebuilt from the log into a fresh database, events/s.

The log holds `replay_events` customer events (registrations, page views, carts, orders,
profile updates, consents); the live group's committed offsets are at its end, as for a
service that is caught up. `python -m rapport_campaign.replay build` then `swap` run in
process: migrate a fresh database, copy campaign's own tables, apply the whole log with
campaign's batch handlers under a new group, discard the replay's outbox. Measured: events
over the build's wall clock (migrations and copies included). Raw `getmany` of the same
topic is shown for scale.
"""

import io
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from bench import kafka_raw
from bench.core import Context, Result, value_at_least
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_campaign.replay import PLAN
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments.models import SegmentCreate
from rapport_campaign.settings import Settings
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.kafka import create_producer
from rapport_events.migrations import upgrade
from rapport_events.replay import Replay
from rapport_events.settings import KafkaSettings
from rapport_events.testing.streams import as_messages, customer_stream

NAME = "replay"
TARGET = 5_000.0
EVENTS_PER_CUSTOMER = 20
SEGMENTS = {
    "buyers": {"metric": "orders", "op": "gte", "value": 2},
    "french": {"attribute": "country", "op": "eq", "value": "FR"},
    "reachable": {"consent": "email"},
}


async def run(ctx: Context) -> list[Result]:
    settings = await ctx.topic("replay")
    events = ctx.sizes.replay_events
    await _fill_log(settings, events)
    raw, _ = await kafka_raw.consume_rate_median(settings, events, 0, 1, ctx.sizes.max_seconds)
    return [await _measure(ctx, kind, settings, events, raw) for kind in await ctx.database_kinds()]


async def _fill_log(settings: KafkaSettings, events: int) -> None:
    """The events on the log, and the live group committed at its end."""
    messages = as_messages(customer_stream(events, max(1, events // EVENTS_PER_CUSTOMER)))
    producer = create_producer(settings, client_id="bench-replay-setup")
    await producer.start()
    ends: dict[int, int] = {}
    try:
        for first in range(0, len(messages), kafka_raw.BATCH):
            sent = [
                await producer.send(settings.topic, m.value, key=m.key, headers=m.headers)
                for m in messages[first : first + kafka_raw.BATCH]
            ]
            for delivery in sent:
                meta = await delivery
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    finally:
        await producer.stop()
    live = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id="campaign")
    await live.start()
    try:
        partitions = {TopicPartition(settings.topic, n): end for n, end in ends.items()}
        live.assign(list(partitions))
        await live.commit({tp: OffsetAndMetadata(end, "") for tp, end in partitions.items()})
    finally:
        await live.stop()


async def _measure(
    ctx: Context, kind: str, kafka: KafkaSettings, events: int, raw: float
) -> Result:
    settings = Settings(database_url="sqlite:///unused.db", kafka=kafka)
    live_url = await ctx.database(kind, "replay-live")
    engine = create_engine(live_url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    async with transaction(session_factory(engine)) as session:
        for name, rule in SEGMENTS.items():
            segment = SegmentCreate.model_validate({"name": name, "rule": rule})
            await segment_service.create_segment(session, segment, settings)
    await engine.dispose()
    into = await ctx.database(kind, "replay-new")
    replay = Replay(PLAN, live_url, into, kafka, {"settings": settings}, io.StringIO())
    began = time.perf_counter()
    built = await replay.build()
    built_at = time.perf_counter()
    await replay.swap()
    swapped_at = time.perf_counter()
    if built.applied != events or built.dead_lettered:
        raise RuntimeError(f"applied {built.applied} of {events}, {built.dead_lettered} dead")
    rate = events / (built_at - began)
    return value_at_least(
        f"replay into a fresh campaign projection ({kind})",
        "events/s",
        rate,
        raw,
        TARGET,
        baseline_name="raw getmany, same topic",
        notes=(
            f"{events} events, {events // EVENTS_PER_CUSTOMER} customers, 3 segments; build "
            f"{built_at - began:.1f} s (whole log under a new group), swap "
            f"{swapped_at - built_at:.1f} s; ratio {rate / raw:.2g}× raw getmany"
        ),
        details={"events": events, "build_s": built_at - began, "swap_s": swapped_at - built_at},
    )
