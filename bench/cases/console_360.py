"""Console: the customer 360 page with 20 operators at once, against the same page with
the service calls stubbed out.

The four services run as processes (SQLite, this run's broker); a customer with three
orders is created and the console waits until support knows them. Two consoles run under
uvicorn as `make run` runs one: one calls the services over HTTP (five calls a page, in
parallel: profile's overview, campaign's audience and, when its short cache has expired,
its segments, support, partner-share), the other answers the same calls in-process from
`rapport_console.testing.FakeServices` (the baseline: rendering, session and access-log
write with no network). Twenty
operators (each logged in once) request the page as fast as they are answered; p95 is
taken over every request after a warm-up. Target: p95 ≤ 300 ms.
"""

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.core import Context, Result, value_at_most, wait_until
from bench.http_load import client as service_client
from bench.services import create_customer, running_stack
from rapport_console.settings import DEVELOPMENT_PASSWORD
from rapport_console.testing import CUSTOMER_ID
from rapport_events.testing.broker import free_port
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY

NAME = "console-360"
TARGET_MS = 300.0
OPERATORS = 20
ROLES = ("admin", "marketer", "support", "privacy")
ROOT = Path(__file__).resolve().parents[2]
# Banners of partial pages seen under load (a service past its deadline).
PARTIAL: list[str] = []


async def run(ctx: Context) -> list[Result]:
    PARTIAL.clear()
    names = ["profile", "campaign", "support", "partner-share"]
    async with running_stack(ctx, names, "sqlite", "console") as (stack, *_):
        customer = await _seed(stack.url("profile"), stack.url("support"), ctx.sizes.max_seconds)
        urls = {f"CONSOLE_{name.upper().replace('-', '_')}_URL": stack.url(name) for name in names}
        requests = max(ctx.sizes.requests // 4, OPERATORS * 5)
        async with _console(
            ctx.workdir, "services", "rapport_console.main:create_app", urls
        ) as url:
            served = await _load(url, customer, requests, ctx.sizes.warmup // 10)
        async with _console(
            ctx.workdir, "stubbed", "rapport_console.testing:stubbed_app", {}
        ) as url:
            stubbed = await _load(url, CUSTOMER_ID, requests, ctx.sizes.warmup // 10)
    p95, baseline = _p95(served), _p95(stubbed)
    notes = f"{len(PARTIAL)} of {len(served)} pages partial under load" if PARTIAL else ""
    return [
        value_at_most(
            NAME,
            "ms p95",
            p95,
            baseline,
            TARGET_MS,
            baseline_name="the page with the service calls stubbed",
            notes=notes,
            details={
                "operators": OPERATORS,
                "requests": len(served),
                "p50_ms": round(_quantile(served, 0.5), 1),
                "stubbed_p50_ms": round(_quantile(stubbed, 0.5), 1),
                "ratio_to_stubbed": round(p95 / baseline, 2) if baseline else None,
                "partial_pages": len(PARTIAL),
                "first_partial": PARTIAL[0] if PARTIAL else None,
            },
        )
    ]


async def _seed(profile: str, support: str, timeout: float) -> str:
    """A customer with three orders, known to support (so every part of the page fills)."""
    async with service_client(4) as http:
        customer = await create_customer(http, profile, "console")
        batch = [
            {
                "type": "track",
                "userId": customer,
                "event": "Order Completed",
                "messageId": f"console-{customer}-{n}",
                "properties": {"order_id": f"c-{customer}-{n}", "revenue": 40 + 10 * n},
            }
            for n in range(3)
        ]
        reply = await http.post(
            f"{profile}/v1/batch", json={"batch": batch}, auth=(DEVELOPMENT_WRITE_KEY, "")
        )
        reply.raise_for_status()

        async def known() -> bool:
            context = await http.get(f"{support}/customers/{customer}/support-context")
            metrics = await http.get(f"{profile}/customers/{customer}/metrics")
            return (
                context.status_code == 200
                and metrics.status_code == 200
                and metrics.json()["orders"] == 3
            )

        await wait_until(known, timeout=timeout, what="the customer in support", interval=0.2)
    return customer


class _Console:
    def __init__(self, workdir: Path, label: str, factory: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = workdir / f"console-{label}.log"
        database = f"sqlite:///{workdir}/console-{label}.db"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={
                **os.environ,
                "RAPPORT_ENV": "development",
                "CONSOLE_DATABASE_URL": database,
                "PYTHONUNBUFFERED": "1",
                **env,
            },
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> str:
        async with httpx.AsyncClient(timeout=1.0) as http:

            async def ready() -> bool:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the console exited: {self.log.read_text()[-2000:]}")
                try:
                    return (await http.get(f"{self.url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, timeout=60, what="the console", interval=0.1)
        return self.url

    async def __aexit__(self, *_exc: object) -> None:
        self.process.terminate()
        await asyncio.to_thread(self.process.wait, 10)


def _console(workdir: Path, label: str, factory: str, env: dict[str, str]) -> _Console:
    return _Console(workdir, label, factory, env)


async def _logged_in(url: str, role: str) -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's keep-alive of 5 s ends them: logging the
    # twenty operators in takes longer than that on a loaded machine, and the first one's
    # connection would be closed under its first page ("Server disconnected").
    limits = httpx.Limits(keepalive_expiry=2.0)
    http = httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits)
    page = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no login form"
    reply = await http.post(
        "/login",
        data={"username": role, "password": DEVELOPMENT_PASSWORD, "csrf_token": token.group(1)},
    )
    if reply.status_code != 303:
        raise RuntimeError(f"login as {role} answered {reply.status_code}")
    return http


async def _load(url: str, customer: str, requests: int, warmup: int) -> list[float]:
    """Milliseconds of each page request, OPERATORS at a time (a partial page, where a
    service missed its deadline under the load, counts in `partial`)."""
    operators = [await _logged_in(url, ROLES[i % len(ROLES)]) for i in range(OPERATORS)]
    first = await operators[0].get(f"/customers/{customer}")
    if first.status_code != 200 or _partial(first.text):
        raise RuntimeError(f"the 360 answered {first.status_code}: {_partial(first.text)}")
    samples: list[float] = []
    remaining = requests + warmup * OPERATORS

    async def operator(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        done = 0
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            reply = await http.get(f"/customers/{customer}")
            elapsed = (time.perf_counter() - started) * 1000
            if reply.status_code != 200:
                raise RuntimeError(f"the 360 answered {reply.status_code}")
            if _partial(reply.text):
                PARTIAL.append(_partial(reply.text))
            done += 1
            if done > warmup:
                samples.append(elapsed)

    try:
        await asyncio.gather(*(operator(http) for http in operators))
    finally:
        for http in operators:
            await http.aclose()
    return samples


def _partial(html: str) -> str:
    """The partial banner's text, or '' for a whole page."""
    banner = re.search(r'data-testid="partial">(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", banner.group(1)).strip() if banner else ""


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _p95(samples: list[float]) -> float:
    return _quantile(samples, 0.95)
