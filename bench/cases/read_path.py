"""Read path: GET /customers/{id} on profile and GET /customers/{id}/support-context on
support, against a bare FastAPI app returning a dict, all under uvicorn in subprocesses,
loaded by one httpx.AsyncClient.

Throughput: a closed loop with 16 requests in flight; the bare app is measured
before and after the services and the mean is the baseline. Latency: an open loop
at half of the service's saturated rate, the bare app at the same rate as its
baseline (at saturation, p99 is only queueing: in-flight requests / throughput).
"""

from collections.abc import Callable

import httpx

from bench.core import Context, Result, mean, ratio_at_least, value_at_most, wait_until
from bench.http_load import BareApp, Load, client, closed_loop, open_loop
from bench.services import create_customers, running_stack

NAME = "read-path"
RATE_TARGET = 0.5
P99_TARGET_MS = 20.0
SEEDED = 200  # customers the reads cycle over (fewer in a quick run)


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for kind in await ctx.database_kinds():
        results.extend(await measure(ctx, kind))
    return results


async def measure(ctx: Context, kind: str) -> list[Result]:
    sizes = ctx.sizes
    bare = BareApp(ctx.workdir)
    routes = {
        "bare": "/customers/{id}",
        "profile": "/customers/{id}",
        "support": "/customers/{id}/support-context",
    }
    saturated: dict[str, list[Load]] = {name: [] for name in routes}
    paced: dict[str, Load] = {}
    async with running_stack(ctx, ["profile", "support"], kind, f"read-{kind}") as (stack, *_):
        await bare.start()
        bases = {"bare": bare.url, "profile": stack.url("profile"), "support": stack.url("support")}
        try:
            async with client(sizes.concurrency) as http:
                seeded = min(SEEDED, max(sizes.requests // 4, 1))
                ids = await create_customers(
                    http, bases["profile"], seeded, sizes.concurrency, "read"
                )
                await _wait_projected(http, bases["support"], ids, sizes.max_seconds)

                def url_of(name: str) -> Callable[[int], str]:
                    return lambda i: bases[name] + routes[name].format(id=ids[i % len(ids)])

                async def closed(name: str) -> None:
                    for total in (sizes.warmup, sizes.requests):
                        load = await closed_loop(
                            http,
                            url_of(name),
                            total=total,
                            concurrency=sizes.concurrency,
                            max_seconds=sizes.max_seconds,
                        )
                    saturated[name].append(load)

                for name in ("bare", "profile", "support", "bare"):
                    await closed(name)

            # Latency at half the service's saturation, the bare app at the same rate.
            async with client(4 * sizes.concurrency) as http:
                for name in ("profile", "support"):
                    rate = saturated[name][0].rate / 2
                    for target in ("bare", name):
                        paced[f"{target}@{name}"] = await open_loop(
                            http,
                            url_of(target),
                            rate=rate,
                            total=sizes.requests // 3,
                            max_seconds=sizes.max_seconds / 4,
                        )
        finally:
            bare.stop()

    baseline_rate = mean([load.rate for load in saturated["bare"]])
    results = []
    for name in ("profile", "support"):
        measured, latency, bare_latency = (
            saturated[name][0],
            paced[name + "@" + name],
            paced["bare@" + name],
        )
        for load in (measured, latency, bare_latency, *saturated["bare"]):
            if load.errors > load.requests / 100:
                raise RuntimeError(f"{name}: {load.errors} of {load.requests} requests failed")
        details = {
            "saturated": measured.summary(),
            "half_load": latency.summary(),
            "bare_saturated": [load.summary() for load in saturated["bare"]],
            "bare_half_load": bare_latency.summary(),
        }
        route = routes[name]
        results.append(
            ratio_at_least(
                f"read {name} ({kind})",
                "req/s",
                measured.rate,
                baseline_rate,
                RATE_TARGET,
                baseline_name="bare FastAPI app",
                notes=(
                    f"GET {route}, {measured.requests} req, {sizes.concurrency} in flight; "
                    f"p99 then {measured.p99_ms:.0f} ms (bare {saturated['bare'][0].p99_ms:.0f})"
                ),
                details=details,
            )
        )
        rate = latency.requests / latency.seconds
        results.append(
            value_at_most(
                f"read {name} p99 at half load ({kind})",
                "ms",
                latency.p99_ms,
                bare_latency.p99_ms,
                P99_TARGET_MS,
                baseline_name="bare FastAPI app p99, same rate",
                notes=(
                    f"open loop {latency.offered:.0f} req/s offered, {rate:.0f} served; "
                    f"p50 {latency.p50_ms:.1f} ms "
                    f"(bare {bare_latency.p50_ms:.1f} ms)"
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
