"""Bounded concurrent load on all four services for a minute: no errors, memory flat.

The services run as processes (as in production) on SQLite and the test broker.
Clients on loopback mix writes (customers, orders through /v1/batch, consents,
tickets) with reads on every service. Each process's resident memory (VmRSS) is
sampled when the warm-up ends and when the load ends; growth past the bound
below would mean memory that grows with traffic.
"""

import asyncio
import base64
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
TRACKING = {"Authorization": "Basic " + base64.b64encode(b"rapport-dev-write-key:").decode()}
CLIENTS = 8
WARM_UP_S = 15.0
LOAD_S = 60.0
# Caches and pools fill during warm-up; after it, a minute of traffic may add this much.
RSS_GROWTH_BOUND_MB = 40.0


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture
async def stack(kafka_broker: TansuBroker, tmp_path: Path) -> AsyncIterator[Stack]:
    env = kafka_env(kafka_broker.bootstrap_servers, "load")
    databases = {name: f"sqlite:///{tmp_path / (name + '.db')}" for name in SERVICES}
    running = Stack(workdir=tmp_path, env=env, databases=databases).start()
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


async def one_step(
    client: httpx.AsyncClient, stack: Stack, tally: Tally, rng: random.Random
) -> None:
    """One request of the mix: mostly reads, some writes."""
    profile = stack.url("profile")
    customer = rng.choice(tally.customers) if tally.customers else None
    roll = rng.random()
    if customer is None or roll < 0.15:
        body = {
            "email": f"load-{uuid.uuid4().hex[:12]}@example.com",
            "first_name": "Load",
            "last_name": "Test",
        }
        name, response = (
            "create",
            await client.post(f"{profile}/customers", json=body, headers=AUTH),
        )
        if response.status_code == 201:
            tally.customers.append(response.json()["id"])
    elif roll < 0.35:
        order = {
            "type": "track",
            "userId": customer,
            "event": "Order Completed",
            "messageId": uuid.uuid4().hex,
            "properties": {"order_id": uuid.uuid4().hex, "revenue": rng.randint(1, 500)},
        }
        name = "track"
        response = await client.post(
            f"{profile}/v1/batch", json={"batch": [order]}, headers=TRACKING
        )
    elif roll < 0.45:
        consent = {"purpose": "marketing", "channel": "email", "granted": rng.random() < 0.5}
        name = "consent"
        response = await client.put(
            f"{profile}/customers/{customer}/consents", json=consent, headers=AUTH
        )
    elif roll < 0.5:
        ticket = {"customer_id": customer, "subject": "Load"}
        name = "ticket"
        response = await client.post(f"{stack.url('support')}/tickets", json=ticket, headers=AUTH)
    else:
        name, url = rng.choice(
            [
                ("customer", f"{profile}/customers/{customer}"),
                ("metrics", f"{profile}/customers/{customer}/metrics"),
                ("timeline", f"{profile}/customers/{customer}/timeline"),
                ("audience", f"{stack.url('campaign')}/audience/{customer}"),
                ("context", f"{stack.url('support')}/customers/{customer}/support-context"),
                ("partner", f"{stack.url('partner-share')}/customers/{customer}"),
                ("segments", f"{stack.url('campaign')}/segments"),
            ]
        )
        response = await client.get(url, headers=AUTH)
    tally.requests[name] += 1
    # A 404 on a projection read is fine: the customer may not have arrived there yet.
    if response.status_code >= 500 or (response.status_code >= 400 and response.status_code != 404):
        tally.errors.append(f"{name} {response.request.url} {response.status_code} {response.text}")


async def client_loop(stack: Stack, tally: Tally, until: float, seed: int) -> None:
    rng = random.Random(seed)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so a request never
    # races the server closing the connection it was about to reuse.
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        while time.monotonic() < until:
            try:
                await one_step(client, stack, tally, rng)
            except httpx.TransportError as error:
                tally.errors.append(f"transport error on {error.request.url}: {error!r}")


async def drive(stack: Stack, seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*(client_loop(stack, tally, until, seed) for seed in range(CLIENTS)))
    return tally


async def test_a_minute_of_load_on_every_service_has_no_errors_and_flat_memory(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    warm_up = await drive(stack, WARM_UP_S)
    before = {name: rss_mb(s.process.pid) for name, s in stack.services.items()}
    load = await drive(stack, LOAD_S)
    after = {name: rss_mb(s.process.pid) for name, s in stack.services.items()}

    with capsys.disabled():
        total = sum(load.requests.values())
        print(
            f"\nload: {total} requests in {LOAD_S:.0f}s ({total / LOAD_S:.0f}/s), {CLIENTS} clients"
        )
        print("  by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(load.requests.items())))
        for name in before:
            growth = after[name] - before[name]
            print(f"  {name}: VmRSS {before[name]:.1f} -> {after[name]:.1f} MB ({growth:+.1f})")
    assert warm_up.errors == [], warm_up.errors[:5]
    assert load.errors == [], load.errors[:5]
    assert total > 0
    grown = {n: after[n] - before[n] for n in before if after[n] - before[n] > RSS_GROWTH_BOUND_MB}
    assert grown == {}, f"resident memory grew by more than {RSS_GROWTH_BOUND_MB} MB: {grown}"
