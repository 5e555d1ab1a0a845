"""Forecast timing: profile's GET /analytics/forecast answered from models fitted ahead of
time, on a fresh process over 90 days of orders.

Orders are tracked for 90 days (two a day), then profile is restarted so nothing is in
its memory. The clock runs for the first call once /readyz is 200 (target ≤ 1 s), then
for warm calls (target p99 ≤ 200 ms). For scale, the baseline is a window no model was
fitted for, so it is fitted on that request, as every call was before models were
fitted ahead; it is asked once the restarted process has fitted the default model
itself, so its fit worker has the library imported by then.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from bench.core import Context, Result, p50_p99, value_at_most, wait_until
from bench.http_load import client
from bench.services import create_customer, running_stack
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY

NAME = "forecast"
FIRST_TARGET_MS = 1000.0
WARM_TARGET_MS = 200.0
DAYS = 90
WARM_CALLS = 50
DEFAULT: dict[str, str | int] = {
    "metric": "revenue",
    "interval": "week",
    "periods": 4,
}  # the API's defaults


async def run(ctx: Context) -> list[Result]:
    async with running_stack(ctx, ["profile"], "sqlite", "forecast") as (stack, *_):
        url = stack.url("profile")
        async with client(4) as http:
            await _seed(http, url, ctx.sizes.max_seconds)
        await asyncio.to_thread(stack.stop, ["profile"])
        started = time.perf_counter()
        restarted_at = datetime.now(UTC)
        stack.start(["profile"])
        await asyncio.to_thread(stack.wait_ready, 120.0)
        ready_s = time.perf_counter() - started
        url = stack.url("profile")
        async with client(1) as http:
            first_ms, first = await _timed(http, url, DEFAULT)
            warm = [(await _timed(http, url, DEFAULT))[0] for _ in range(WARM_CALLS)]
            await _refitted_since(http, url, restarted_at, ctx.sizes.max_seconds)
            today = datetime.now(UTC).date()
            other = {**DEFAULT, "from": str(today - timedelta(days=80)), "to": str(today)}
            on_request_ms, _ = await _timed(http, url, other)
    p50, p99 = p50_p99(warm)
    details = {
        "ready_s": round(ready_s, 2),
        "first_reply_age_s": first.get("age_s"),
        "fitted_at": first.get("fitted_at"),
        "warm_p50_ms": round(p50, 1),
    }
    return [
        value_at_most(
            NAME,
            "ms first call after start",
            first_ms,
            on_request_ms,
            FIRST_TARGET_MS,
            baseline_name="a window fitted on request",
            details=details,
        ),
        value_at_most(
            NAME,
            "ms p99 warm",
            p99,
            on_request_ms,
            WARM_TARGET_MS,
            baseline_name="a window fitted on request",
            details={"p50_ms": round(p50, 1), "calls": WARM_CALLS},
        ),
    ]


async def _seed(http: httpx.AsyncClient, url: str, timeout: float) -> None:
    """Two orders a day for DAYS days, through the tracking API, until profile counts them."""
    customer = await create_customer(http, url, "forecast")
    now = datetime.now(UTC)
    batch = [
        {
            "type": "track",
            "userId": customer,
            "event": "Order Completed",
            "messageId": f"forecast-{day}-{n}",
            "timestamp": (now - timedelta(days=day, hours=3 * n)).isoformat(),
            "properties": {"order_id": f"f-{day}-{n}", "revenue": 50 + day % 7 * 10 + n},
        }
        for day in range(DAYS)
        for n in range(2)
    ]
    reply = await http.post(
        f"{url}/v1/batch", json={"batch": batch}, auth=(DEVELOPMENT_WRITE_KEY, "")
    )
    reply.raise_for_status()

    async def counted() -> bool:
        metrics = await http.get(f"{url}/customers/{customer}/metrics")
        return metrics.status_code == 200 and metrics.json()["orders"] == len(batch)

    await wait_until(counted, timeout=timeout, what="the seeded orders", interval=0.2)


async def _refitted_since(
    http: httpx.AsyncClient, url: str, since: datetime, timeout: float
) -> None:
    """Until the default forecast comes from a model the restarted process fitted."""

    async def refitted() -> bool:
        reply = await http.get(f"{url}/analytics/forecast", params=DEFAULT)
        if reply.status_code != 200:
            return False
        return datetime.fromisoformat(reply.json()["fitted_at"].replace("Z", "+00:00")) >= since

    await wait_until(
        refitted, timeout=timeout, what="the restarted process's own fit", interval=0.2
    )


async def _timed(http: httpx.AsyncClient, url: str, params: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    reply = await http.get(f"{url}/analytics/forecast", params=params)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if reply.status_code != 200:
        raise RuntimeError(f"forecast answered {reply.status_code}: {reply.text[:300]}")
    return elapsed_ms, reply.json()
