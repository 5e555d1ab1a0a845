"""Read path: GET /customers/{id} on profile and GET /customers/{id}/support-context on
support, against a bare FastAPI app returning a dict, all under uvicorn, loaded by `wrk`.

The services run as `make run` runs them: RAPPORT_ENV=development, tracing on and
every span written as JSON lines to a trace folder. Each wrk run cycles over the
seeded customers' paths with the bearer token (a Lua script, bench/wrk.py).

Throughput: `concurrency` connections for `http_seconds`; the bare app is measured
before and after the services and the mean is the baseline. Latency: p99 at half
load, from `wrk --latency`. Debian's wrk has no fixed rate (wrk2's `-R`), so half
load is the same number of connections, each pausing a random time between requests
(wrk's `delay()`, exponential) so that together they offer half the service's
saturated rate; the bare app is paced to the same rate. The rate wrk reached is in the notes.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import wrk
from bench.core import Context, Result, mean, ratio_at_least, value_at_most, wait_until
from bench.http_load import BareApp, client
from bench.services import create_customers, running_stack
from bench.wrk import WrkLoad

NAME = "read-path"
RATE_TARGETS = {"profile": 0.25, "support": 0.15}
P99_TARGET_MS = 20.0
SEEDED = 200  # customers the reads cycle over (fewer in a quick run)
WARMUP_SECONDS = 1.0
ROUTES = {
    "bare": "/customers/{id}",
    "profile": "/customers/{id}",
    "support": "/customers/{id}/support-context",
}


@dataclass(frozen=True)
class Targets:
    """Where each app of the read path listens, and the paths a run cycles over."""

    bases: dict[str, str]
    ids: list[str]
    pids: dict[str, int]

    def paths(self, name: str) -> list[str]:
        return [ROUTES[name].format(id=customer_id) for customer_id in self.ids]


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for kind in await ctx.database_kinds():
        results.extend(await measure(ctx, kind))
    return results


def make_run_env(workdir: Path) -> dict[str, str]:
    """What `make run` gives the services: development, spans written as JSON lines."""
    traces = workdir / f"traces-{uuid.uuid4().hex[:6]}"
    traces.mkdir(parents=True)
    return {"RAPPORT_ENV": "development", "RAPPORT_TRACE_DIR": str(traces)}


@asynccontextmanager
async def read_targets(ctx: Context, kind: str) -> AsyncIterator[Targets]:
    """Profile and support (as `make run` runs them) with seeded customers, and the bare app."""
    bare = BareApp(ctx.workdir)
    env = make_run_env(ctx.workdir)
    async with running_stack(ctx, ["profile", "support"], kind, f"read-{kind}", env) as (
        stack,
        *_,
    ):
        await bare.start()
        try:
            bases = {"bare": bare.url, "profile": stack.url("profile")}
            bases["support"] = stack.url("support")
            async with client(ctx.sizes.concurrency) as http:
                seeded = min(SEEDED, max(ctx.sizes.requests // 4, 1))
                ids = await create_customers(
                    http, bases["profile"], seeded, ctx.sizes.concurrency, "read"
                )
                await _wait_projected(http, bases["support"], ids, ctx.sizes.max_seconds)
            assert bare.process is not None
            pids = {name: stack.services[name].process.pid for name in ("profile", "support")}
            yield Targets(bases, ids, {**pids, "bare": bare.process.pid})
        finally:
            bare.stop()


async def load(
    ctx: Context, targets: Targets, name: str, *, seconds: float, delay_ms: float = 0.0
) -> WrkLoad:
    """One wrk run against `name`, refused when more than 1 % of its requests failed."""
    measured = await wrk.run(
        targets.bases[name],
        targets.paths(name),
        workdir=ctx.workdir,
        seconds=seconds,
        connections=ctx.sizes.concurrency,
        delay_ms=delay_ms,
        server_pid=targets.pids[name],
    )
    if measured.errors > measured.requests / 100:
        raise RuntimeError(f"{name}: {measured.errors} of {measured.requests} requests failed")
    return measured


async def measure(ctx: Context, kind: str) -> list[Result]:
    seconds = ctx.sizes.http_seconds
    saturated: dict[str, list[WrkLoad]] = {name: [] for name in ROUTES}
    paced: dict[str, WrkLoad] = {}
    async with read_targets(ctx, kind) as targets:
        for name in ("bare", "profile", "support", "bare"):
            await load(ctx, targets, name, seconds=WARMUP_SECONDS)
            saturated[name].append(await load(ctx, targets, name, seconds=seconds))
        # Latency at half the service's saturation, the bare app at the same rate.
        for name in ("profile", "support"):
            rate = saturated[name][0].rate / 2
            for target in ("bare", name):
                service_ms = 1000.0 / saturated[target][0].rate
                delay = wrk.delay_for(rate, ctx.sizes.concurrency, service_ms)
                paced[f"{target}@{name}"] = await load(
                    ctx, targets, target, seconds=seconds, delay_ms=delay
                )
    baseline_rate = mean([run.rate for run in saturated["bare"]])
    bare_cpu = mean([run.cpu_ms_per_request or 0.0 for run in saturated["bare"]])
    results = []
    for name in ("profile", "support"):
        measured, latency = saturated[name][0], paced[f"{name}@{name}"]
        bare_latency = paced[f"bare@{name}"]
        details = {
            "saturated": measured.summary(),
            "half_load": latency.summary(),
            "bare_saturated": [run.summary() for run in saturated["bare"]],
            "bare_half_load": bare_latency.summary(),
        }
        route = ROUTES[name]
        results.append(
            ratio_at_least(
                f"read {name} ({kind})",
                "req/s",
                measured.rate,
                baseline_rate,
                RATE_TARGETS[name],
                baseline_name="bare FastAPI app",
                notes=(
                    f"wrk, GET {route}, {measured.requests} req in {measured.seconds:.0f} s, "
                    f"{measured.connections} connections; p50 {measured.p50_ms:.1f} / "
                    f"p99 {measured.p99_ms:.1f} ms (bare {saturated['bare'][0].p50_ms:.1f} / "
                    f"{saturated['bare'][0].p99_ms:.1f}); tracing on, spans to files; "
                    f"CPU {measured.cpu_ms_per_request or 0:.2f} ms/req (bare {bare_cpu:.3f}: "
                    f"{bare_cpu / (measured.cpu_ms_per_request or 1):.2f}× by CPU)"
                ),
                details=details,
            )
        )
        results.append(
            value_at_most(
                f"read {name} p99 at half load ({kind})",
                "ms",
                latency.p99_ms,
                bare_latency.p99_ms,
                P99_TARGET_MS,
                baseline_name="bare FastAPI app p99, same rate",
                notes=(
                    f"wrk, {latency.connections} connections pausing "
                    f"{latency.delay_ms:.0f} ms on average: "
                    f"{latency.rate:.0f} req/s for half of {measured.rate:.0f}; "
                    f"p50 {latency.p50_ms:.1f} ms (bare {bare_latency.p50_ms:.1f} ms "
                    f"at {bare_latency.rate:.0f} req/s)"
                ),
                details=details,
            )
        )
    return results


async def _wait_projected(
    http: httpx.AsyncClient, support_url: str, ids: list[str], timeout: float
) -> None:
    pending = list(ids)

    async def all_there() -> bool:
        while pending:
            reply = await http.get(f"{support_url}/customers/{pending[-1]}/support-context")
            if reply.status_code != 200:
                return False
            pending.pop()
        return True

    await wait_until(all_there, timeout=timeout, what="support projection", interval=0.05)
