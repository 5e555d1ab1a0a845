"""Ingest through profile's Segment-compatible POST /v1/batch until the events are on the
customers' timelines, against raw aiokafka produce+consume of as many events.

Batches of 100 `track` calls (a Segment client's usual batch), 4 in flight, the write
key as the HTTP Basic user, spread over customers created first. The clock runs from
the first POST until profile's timeline holds every event: the tracking API wrote
them to the outbox, the relay published them, profile's own consumer recorded them.
The baseline sends the very messages the relay sent (key, value, CloudEvents headers)
with raw aiokafka while a getmany reader drains the topic, first send to last read,
measured before and after; their mean is the divisor. Targets: ≥ 0.25× that, and at
least 10,000 events/s on this machine.
"""

import asyncio
import base64
import itertools
import json
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import kafka_raw
from bench.core import Context, Result, mean, ratio_at_least, value_at_least, wait_until
from bench.http_load import client
from bench.services import create_customers, running_stack
from rapport_events.db import create_engine
from rapport_events.types import InteractionTracked
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY

# The case reads profile's sent outbox rows afterwards: keep them (marked sent) for the run.
KEEP_SENT_ROWS = {"KAFKA_OUTBOX_RETENTION_S": "3600"}
NAME = "ingest-batch"
RATIO_TARGET = 0.25
RATE_TARGET = 10_000.0
PER_BATCH = 100
IN_FLIGHT = 4
CUSTOMERS = 100
TRACKED = InteractionTracked.TYPE
BASIC = {
    "Authorization": "Basic " + base64.b64encode(f"{DEVELOPMENT_WRITE_KEY}:".encode()).decode()
}


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for kind in await ctx.database_kinds():
        results.extend(await measure(ctx, kind))
    return results


def _calls(ids: list[str], first: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "userId": ids[n % len(ids)],
            "event": "Video Played",
            "messageId": f"bench-{n}",
            "properties": {"video_id": f"video-{n % 50}", "position": n % 600},
        }
        for n in range(first, first + count)
    ]


async def _post(http: httpx.AsyncClient, url: str, ids: list[str], first: int, count: int) -> float:
    """POST `count` calls in batches of PER_BATCH, IN_FLIGHT at a time; returns seconds."""
    starts = iter(range(first, first + count, PER_BATCH))

    async def worker() -> None:
        for start in starts:
            batch = _calls(ids, start, min(PER_BATCH, first + count - start))
            reply = await http.post(f"{url}/v1/batch", json={"batch": batch}, headers=BASIC)
            if reply.status_code != 200:
                raise RuntimeError(f"/v1/batch answered {reply.status_code}: {reply.text[:300]}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - began


async def _on_timeline(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        sql = text("SELECT count(*) FROM profile_timeline WHERE type = :type")
        return int((await connection.execute(sql, {"type": TRACKED})).scalar_one())


async def _until_on_timeline(engine: AsyncEngine, count: int, timeout: float) -> float:
    async def done() -> bool:
        return await _on_timeline(engine) >= count

    return await wait_until(done, timeout=timeout, what=f"{count} events on the timeline")


async def _sent_messages(engine: AsyncEngine, count: int) -> list[kafka_raw.Message]:
    """`count` messages cycled from the tracked events the relay has sent, as it sent them."""
    async with engine.connect() as connection:
        sql = text("SELECT key, value, headers FROM outbox WHERE event_type = :type")
        rows = (await connection.execute(sql, {"type": TRACKED})).all()
    sent = [
        kafka_raw.Message(
            key.encode(),
            bytes(value),
            [(name, header.encode()) for name, header in _json(headers)],
        )
        for key, value, headers in rows
    ]
    return list(itertools.islice(itertools.cycle(sent), count))


def _json(value: Any) -> Any:
    # SQLite hands a JSON column back as text through a plain query.
    return json.loads(value) if isinstance(value, str) else value


async def _baseline(ctx: Context, messages: list[kafka_raw.Message]) -> float:
    settings = await ctx.topic("ingest-raw")
    return await kafka_raw.produce_consume_rate(
        settings, settings.topic, messages, ctx.sizes.max_seconds
    )


async def measure(ctx: Context, kind: str) -> list[Result]:
    sizes = ctx.sizes
    events = sizes.ingest_events
    timeout = 2 * sizes.max_seconds
    async with running_stack(
        ctx, ["profile"], kind, f"ingest-{kind}", extra_env=KEEP_SENT_ROWS
    ) as (stack, _, databases):
        url = stack.url("profile")
        engine = create_engine(databases["profile"])
        try:
            async with client(IN_FLIGHT) as http:
                ids = await create_customers(http, url, CUSTOMERS, IN_FLIGHT, "ingest")
                warmup = max(PER_BATCH, sizes.warmup)
                await _post(http, url, ids, 0, warmup)
                await _until_on_timeline(engine, warmup, timeout)
                messages = await _sent_messages(engine, events)
                before = await _baseline(ctx, messages)

                started = time.perf_counter()
                posting = await _post(http, url, ids, warmup, events)
                done = await _until_on_timeline(engine, warmup + events, timeout)
                elapsed = done - started
                after = await _baseline(ctx, messages)
                await _check_shown(http, url, ids[0])
        finally:
            await engine.dispose()

    rate = events / elapsed
    baseline = mean([before, after])
    size = mean([m.size for m in messages[:PER_BATCH]])
    notes = (
        f"{events} track calls, batches of {PER_BATCH}, {IN_FLIGHT} in flight, "
        f"{len(ids)} customers; POST alone {events / posting:,.0f}/s; "
        f"events of {size:.0f} B; first POST → all on the timeline"
    )
    details = {
        "events": events,
        "seconds": elapsed,
        "post_seconds": posting,
        "post_rate": events / posting,
        "message_bytes": size,
        "baseline_before": before,
        "baseline_after": after,
    }
    return [
        ratio_at_least(
            f"ingest /v1/batch ({kind})",
            "events/s",
            rate,
            baseline,
            RATIO_TARGET,
            baseline_name="raw produce+consume, same messages",
            notes=notes,
            details=details,
        ),
        value_at_least(
            f"ingest /v1/batch absolute ({kind})",
            "events/s",
            rate,
            baseline,
            RATE_TARGET,
            baseline_name="raw produce+consume, same messages",
            notes=f"absolute floor on this machine; {notes}",
            details=details,
        ),
    ]


async def _check_shown(http: httpx.AsyncClient, url: str, customer_id: str) -> None:
    """The timeline route shows what the count saw."""
    reply = await http.get(f"{url}/customers/{customer_id}/timeline", params={"type": TRACKED})
    items = reply.json().get("items", []) if reply.status_code == 200 else []
    if not any(item.get("type") == TRACKED for item in items):
        raise RuntimeError(f"timeline of {customer_id} shows no tracked event: {reply.text[:300]}")
