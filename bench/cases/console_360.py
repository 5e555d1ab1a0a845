"""Console: the customer 360 page with 20 operators at once, against the same page with
the service calls stubbed out.

The four services run as processes (SQLite, this run's broker); a customer with three
orders is created and the console waits until support knows them. Two consoles run under
uvicorn as `make run` runs one: one calls the services over HTTP (five calls a page, in
parallel: profile's overview, campaign's audience and, when its short cache has expired,
its segments, support, partner-share), the other answers the same calls in-process from
`rapport_console.testing.FakeServices` (the baseline: rendering, session and access-log
write with no network).

Twenty operators (each logged in once, four roles) work at once: each opens a 360 page,
reads it for a moment (a random pause, exponential, of mean THINK_MS: one second, far
busier than a desk where an agent opens a customer every few minutes) and opens the
next. `wrk` plays them: twenty connections, each request carrying the next operator's
session cookie, the pause in wrk's delay(); a C load generator leaves both cores to the
console and the services (an httpx client parsing each page took a third of a core).
Target: p95 ≤ 300 ms, from wrk's histogram; a page with the partial banner is counted.
Then the same twenty connections with no pause (twenty pages always in flight) measure
the capacity: pages/s, its p95, and the CPU each process spent per page (details).
"""

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import wrk
from bench.core import Context, Result, value_at_most, wait_until
from bench.http_load import client as service_client
from bench.services import create_customer, running_stack
from bench.wrk import WrkLoad
from rapport_console.settings import DEVELOPMENT_PASSWORD
from rapport_console.testing import CUSTOMER_ID
from rapport_events.testing.broker import free_port
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY

NAME = "console-360"
TARGET_MS = 300.0
OPERATORS = 20
ROLES = ("admin", "marketer", "support", "privacy")
ROOT = Path(__file__).resolve().parents[2]
WARMUP_SECONDS = 2.0
THINK_MS = 1000.0  # an operator's mean pause between two pages
# The banner of a partial page (a service past its deadline under the load).
PARTIAL_MARKER = 'data-testid="partial"'


async def run(ctx: Context) -> list[Result]:
    names = ["profile", "campaign", "support", "partner-share"]
    async with running_stack(ctx, names, "sqlite", "console") as (stack, *_):
        customer = await _seed(stack.url("profile"), stack.url("support"), ctx.sizes.max_seconds)
        urls = {f"CONSOLE_{name.upper().replace('-', '_')}_URL": stack.url(name) for name in names}
        pids = {name: stack.services[name].process.pid for name in names}
        async with _console(
            ctx.workdir, "services", "rapport_console.main:create_app", urls
        ) as console:
            served = await _load(ctx, console, customer, {**pids, "console": console.pid})
        async with _console(
            ctx.workdir, "stubbed", "rapport_console.testing:stubbed_app", {}
        ) as console:
            stubbed = await _load(ctx, console, CUSTOMER_ID, {"console": console.pid})
    p95, baseline = _p95(served.paced), _p95(stubbed.paced)
    partial = served.paced.marked + served.saturated.marked
    notes = (
        f"20 in flight (no pause): p95 {_p95(served.saturated):.0f} ms, "
        f"{served.saturated.rate:.0f} pages/s (stubbed {_p95(stubbed.saturated):.0f} ms, "
        f"{stubbed.saturated.rate:.0f}/s)"
    )
    if partial:
        notes += f"; {partial} pages partial under load"
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
                "think_ms": THINK_MS,
                "paced": served.paced.summary(),
                "stubbed_paced": stubbed.paced.summary(),
                "saturated": served.saturated.summary(),
                "stubbed_saturated": stubbed.saturated.summary(),
                "ratio_to_stubbed": round(p95 / baseline, 2) if baseline else None,
                "partial_pages": partial,
                "cpu_ms_per_page": served.cpu_ms_per_page,
                "stubbed_cpu_ms_per_page": stubbed.cpu_ms_per_page,
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
        self.pid = self.process.pid

    async def __aenter__(self) -> "_Console":
        async with httpx.AsyncClient(timeout=1.0) as http:

            async def ready() -> bool:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the console exited: {self.log.read_text()[-2000:]}")
                try:
                    return (await http.get(f"{self.url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, timeout=60, what="the console", interval=0.1)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.process.terminate()
        await asyncio.to_thread(self.process.wait, 10)


def _console(workdir: Path, label: str, factory: str, env: dict[str, str]) -> _Console:
    return _Console(workdir, label, factory, env)


@dataclass(frozen=True)
class Measured:
    """One console's runs: operators who pause between pages, then no pause (capacity);
    the CPU each process spent per page in the second."""

    paced: WrkLoad
    saturated: WrkLoad
    cpu_ms_per_page: dict[str, float]


async def _session_cookie(url: str, role: str) -> str:
    """The Cookie header of an operator of `role` logged in through the login form."""
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, "no login form"
        reply = await http.post(
            "/login",
            data={"username": role, "password": DEVELOPMENT_PASSWORD, "csrf_token": token[1]},
        )
        if reply.status_code != 303:
            raise RuntimeError(f"login as {role} answered {reply.status_code}")
        return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def _load(ctx: Context, console: _Console, customer: str, pids: dict[str, int]) -> Measured:
    """OPERATORS connections asking for the 360 page as fast as it comes, each request with
    the next operator's session; the first page is checked whole before the load."""
    cookies = [await _session_cookie(console.url, ROLES[i % len(ROLES)]) for i in range(OPERATORS)]
    path = f"/customers/{customer}"
    async with httpx.AsyncClient(base_url=console.url, timeout=30.0) as http:
        first = await http.get(path, headers={"Cookie": cookies[0]})
    if first.status_code != 200 or _partial(first.text):
        raise RuntimeError(f"the 360 answered {first.status_code}: {_partial(first.text)}")
    sessions = [{"Cookie": cookie} for cookie in cookies]

    async def measure(seconds: float, think_ms: float = 0.0) -> WrkLoad:
        load = await wrk.run(
            console.url,
            [path],
            workdir=ctx.workdir,
            seconds=seconds,
            connections=OPERATORS,
            delay_ms=think_ms,
            token=None,
            header_sets=sessions,
            marker=PARTIAL_MARKER,
        )
        if load.errors or not load.requests:
            raise RuntimeError(f"{load.errors} of {load.requests} pages failed: {load}")
        return load

    await measure(WARMUP_SECONDS)
    # Paced runs gather fewer pages a second: twice as long, for a steadier p95.
    paced = await measure(2 * ctx.sizes.http_seconds, THINK_MS)
    before = {name: wrk.cpu_seconds(pid) for name, pid in pids.items()}
    saturated = await measure(ctx.sizes.http_seconds)
    cpu = {
        name: round((wrk.cpu_seconds(pid) - before[name]) * 1000 / saturated.requests, 1)
        for name, pid in pids.items()
    }
    return Measured(paced, saturated, cpu)


def _partial(html: str) -> str:
    """The partial banner's text, or '' for a whole page."""
    banner = re.search(r'data-testid="partial">(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", banner.group(1)).strip() if banner else ""


def _p95(load: WrkLoad) -> float:
    if load.p95_ms is None:
        raise RuntimeError("wrk printed no p95")
    return load.p95_ms
