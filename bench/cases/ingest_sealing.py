"""What sealing personal fields costs on ingest: POST /v1/batch until on the timeline, with
sealing on against the same run with it off (`KAFKA_SEAL_PERSONAL_FIELDS=false`).

The calls are those of `ingest-batch` (track calls whose `properties` are personal, so
every event is sealed under its customer's data key). Four runs, each on a fresh stack,
in the order off, on, on, off, so a machine that slows down or speeds up during the case
weighs on both sides alike. Two ratios: profile's CPU seconds per event (user + system,
from /proc: what sealing adds to the work, which other load on the machine moves
little) plain over sealed, gated at ≥ 0.85 (encryption costs at most 15 %); and the
events/s sealed over plain, shown (on a shared machine it moves with the neighbours).

Also shown: the cost of sealing one event alone (the outbox's encode with and without
the AES-GCM step), in microseconds.
"""

import time
import timeit

from bench.cases.ingest_batch import CUSTOMERS, IN_FLIGHT, PER_BATCH, _post, _until_on_timeline
from bench.core import Context, Result, mean, ratio_at_least
from bench.http_load import client
from bench.services import create_customers, running_stack
from bench.wrk import cpu_seconds
from rapport_events import outbox, shredding
from rapport_events.codec import Envelope, encode
from rapport_events.db import create_engine
from rapport_events.types import InteractionTracked

NAME = "ingest-sealing"
RATIO_TARGET = 0.85
ORDER = (False, True, True, False)


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for kind in await ctx.database_kinds():
        results.extend(await measure(ctx, kind))
    return results


async def ingest_rate(ctx: Context, kind: str, sealed: bool) -> tuple[float, float]:
    """Events per second from the first POST until all are on profile's timeline, and
    profile's CPU microseconds per event meanwhile."""
    env = {"KAFKA_SEAL_PERSONAL_FIELDS": "true" if sealed else "false"}
    label = f"sealing-{'on' if sealed else 'off'}-{kind}"
    events, timeout = ctx.sizes.ingest_events, 2 * ctx.sizes.max_seconds
    async with running_stack(ctx, ["profile"], kind, label, extra_env=env) as (stack, _, dbs):
        url = stack.url("profile")
        engine = create_engine(dbs["profile"])
        try:
            async with client(IN_FLIGHT) as http:
                ids = await create_customers(http, url, CUSTOMERS, IN_FLIGHT, label)
                warmup = max(PER_BATCH, ctx.sizes.warmup)
                await _post(http, url, ids, 0, warmup)
                await _until_on_timeline(engine, warmup, timeout)
                pid = stack.services["profile"].process.pid
                cpu_before = cpu_seconds(pid)
                started = time.perf_counter()
                await _post(http, url, ids, warmup, events)
                done = await _until_on_timeline(engine, warmup + events, timeout)
                cpu = cpu_seconds(pid) - cpu_before
        finally:
            await engine.dispose()
    return events / (done - started), cpu / events * 1e6


def seal_cost_us() -> tuple[float, float]:
    """Microseconds to make the outbox value of one tracked event, plain and sealed."""
    event = InteractionTracked(
        customer_id="c-bench",
        kind="track",
        name="Video Played",
        properties={"video_id": "video-7", "position": 42},
    )
    envelope = Envelope(event, "/services/profile")
    key = shredding.new_data_key("c-bench")
    rounds = 5_000
    plain = timeit.timeit(lambda: encode(envelope), number=rounds)
    sealed = timeit.timeit(
        lambda: outbox._sealed(envelope, InteractionTracked.PERSONAL, key), number=rounds
    )
    return plain / rounds * 1e6, sealed / rounds * 1e6


async def measure(ctx: Context, kind: str) -> list[Result]:
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for sealed in ORDER:
        rate, cpu_us = await ingest_rate(ctx, kind, sealed)
        rates[sealed].append(rate)
        cpu[sealed].append(cpu_us)
    encode_us, seal_us = seal_cost_us()
    notes = (
        f"{ctx.sizes.ingest_events} track calls per run, runs off/on/on/off; "
        f"plain {', '.join(f'{r:,.0f}' for r in rates[False])}/s and "
        f"{', '.join(f'{c:,.0f}' for c in cpu[False])} µs CPU/event, "
        f"sealed {', '.join(f'{r:,.0f}' for r in rates[True])}/s and "
        f"{', '.join(f'{c:,.0f}' for c in cpu[True])} µs CPU/event; "
        f"one event's outbox value {encode_us:.1f} µs plain, {seal_us:.1f} µs sealed"
    )
    details = {
        "plain_rates": rates[False],
        "sealed_rates": rates[True],
        "plain_cpu_us": cpu[False],
        "sealed_cpu_us": cpu[True],
        "encode_us": encode_us,
        "seal_us": seal_us,
    }
    # Events per CPU second, so that a higher ratio is better as for every other row.
    per_cpu = {sealed: 1e6 / mean(values) for sealed, values in cpu.items()}
    return [
        ratio_at_least(
            f"ingest sealed vs plain, profile CPU ({kind})",
            "events/CPU-s",
            per_cpu[True],
            per_cpu[False],
            RATIO_TARGET,
            baseline_name="the same ingest with sealing off",
            notes=notes,
            details=details,
        ),
        ratio_at_least(
            f"ingest sealed vs plain, throughput ({kind})",
            "events/s",
            mean(rates[True]),
            mean(rates[False]),
            RATIO_TARGET,
            baseline_name="the same ingest with sealing off",
            notes="wall clock: moves with other load on the machine",
            details=details,
        ),
    ]
