"""End-to-end latency: a customer created on profile until it is in campaign's and support's
projections, at about half the pipeline's saturation rate.

Saturation is measured first: customers created as fast as 16 clients can, divided by
the time until the last one is in both projections. Then customers are created open
loop at half that rate. Latency is taken inside the services: from profile's outbox
row (written in the creating transaction) to the inbox row of campaign and support
(written in the transaction that updates their projection), so polling does not load
the services. The baseline is a raw aiokafka produce-to-getmany round trip at the same
rate on the same broker, for scale.
"""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from bench import kafka_raw
from bench.core import Context, Result, p50_p99, value_at_most, wait_until
from bench.http_load import client
from bench.services import create_customer, create_customers, running_stack
from rapport_events.db import create_engine
from rapport_events.types import CustomerRegistered

# The case reads profile's sent outbox rows afterwards: keep them (marked sent) for the run.
KEEP_SENT_ROWS = {"KAFKA_OUTBOX_RETENTION_S": "3600"}
NAME = "end-to-end"
P99_TARGET_MS = 250.0
REGISTERED = CustomerRegistered.TYPE
DOWNSTREAM = {"campaign": "/audience/{id}", "support": "/customers/{id}/support-context"}


async def run(ctx: Context) -> list[Result]:
    # SQLite, the default database of every service; the consumer case covers PostgreSQL.
    return await measure(ctx, "sqlite")


def _utc(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _query(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(text(sql), {"type": REGISTERED})).all())
    finally:
        await engine.dispose()


async def _projected(databases: dict[str, str]) -> int:
    """Customers present in every downstream projection (the smallest inbox count)."""
    counts = [
        (await _query(databases[name], "SELECT count(*) FROM inbox WHERE event_type = :type"))[0][0]
        for name in DOWNSTREAM
    ]
    return int(min(counts))


async def _until_projected(databases: dict[str, str], total: int, timeout: float) -> float:
    async def done() -> bool:
        return await _projected(databases) >= total

    return await wait_until(
        done, timeout=timeout, what=f"{total} customers projected", interval=0.02
    )


async def _open_loop(
    http: httpx.AsyncClient, profile_url: str, rate: float, count: int
) -> list[str]:
    """Create `count` customers, one every 1/rate s, not waiting for earlier replies."""
    tasks = []
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create_customer(http, profile_url, "e2e")))
    return list(await asyncio.gather(*tasks))


async def measure(ctx: Context, kind: str) -> list[Result]:
    sizes = ctx.sizes
    names = ["profile", *DOWNSTREAM]
    async with running_stack(ctx, names, kind, f"e2e-{kind}", extra_env=KEEP_SENT_ROWS) as (
        stack,
        _settings,
        databases,
    ):
        profile_url = stack.url("profile")
        created = 0
        async with client(sizes.concurrency) as http:
            warmup = min(sizes.warmup, 50)
            await create_customers(http, profile_url, warmup, sizes.concurrency, "e2e-warmup")
            created += warmup
            await _until_projected(databases, created, sizes.max_seconds)

            started = time.perf_counter()
            await create_customers(
                http, profile_url, sizes.saturation_customers, sizes.concurrency, "e2e-saturation"
            )
            posted = time.perf_counter()
            created += sizes.saturation_customers
            projected = await _until_projected(databases, created, sizes.max_seconds)
            saturation = sizes.saturation_customers / (projected - started)
            post_rate = sizes.saturation_customers / (posted - started)

        rate = saturation / 2
        count = max(2, min(sizes.e2e_customers, int(rate * sizes.max_seconds / 2)))
        async with client(4 * sizes.concurrency) as http:
            began = time.perf_counter()
            ids = await _open_loop(http, profile_url, rate, count)
            achieved = count / (time.perf_counter() - began)
            created += count
            await _until_projected(databases, created, sizes.max_seconds)
            for customer_id in ids[:: max(1, len(ids) // 5)]:  # the routes show them too
                for name, route in DOWNSTREAM.items():
                    reply = await http.get(stack.url(name) + route.format(id=customer_id))
                    if reply.status_code != 200:
                        raise RuntimeError(f"{name} does not show {customer_id}: {reply.text}")

        outbox_rows = await _query(
            databases["profile"],
            "SELECT key, event_id, created_at, sent_at FROM outbox WHERE event_type = :type",
        )
        written = {key: (event_id, _utc(at)) for key, event_id, at, _ in outbox_rows}
        # The first leg: from the outbox row to the relay marking it sent (after delivery).
        sent = {key: _utc(at) for key, _, _, at in outbox_rows if at is not None}
        relay_p50, relay_p99 = p50_p99(
            [(sent[i] - written[i][1]).total_seconds() * 1000 for i in ids if i in sent]
        )
        latencies: dict[str, list[float]] = {}
        for name in DOWNSTREAM:
            applied = {
                event_id: _utc(at)
                for event_id, at in await _query(
                    databases[name],
                    "SELECT event_id, processed_at FROM inbox WHERE event_type = :type",
                )
            }
            latencies[name] = [
                (applied[written[i][0]] - written[i][1]).total_seconds() * 1000 for i in ids
            ]

    raw_settings = await ctx.topic("e2e-raw")
    raw = await kafka_raw.round_trip_latencies(
        raw_settings, rate, count, warmup=20, size=1024, timeout=sizes.max_seconds
    )
    raw_p50, raw_p99 = p50_p99([seconds * 1000 for seconds in raw])

    results = []
    for name, samples in latencies.items():
        p50, p99 = p50_p99(samples)
        results.append(
            value_at_most(
                f"e2e profile→{name} p99 ({kind})",
                "ms",
                p99,
                raw_p99,
                P99_TARGET_MS,
                baseline_name="raw produce→getmany p99, same rate",
                notes=(
                    f"p50 {p50:.0f} ms (raw {raw_p50:.0f} ms); relay leg p50 {relay_p50:.0f} "
                    f"/ p99 {relay_p99:.0f} ms; {count} customers at "
                    f"{achieved:.0f}/s, half of saturation {saturation:.0f}/s "
                    f"(POST alone {post_rate:.0f}/s)"
                ),
                details={
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "max_ms": max(samples),
                    "customers": count,
                    "rate": achieved,
                    "saturation": saturation,
                    "post_rate": post_rate,
                    "relay_leg_p50_ms": relay_p50,
                    "relay_leg_p99_ms": relay_p99,
                    "raw_p50_ms": raw_p50,
                    "raw_p99_ms": raw_p99,
                },
            )
        )
    return results
