"""Delay from a consent revocation on profile to the partner's first refused request.

Runs profile and partner-share as their own uvicorn processes next to a Tansu broker, on
SQLite or PostgreSQL. Customers are registered on profile and share their contact slice with
one partner through profile's consent API. Then, one customer at a time, the consent is
revoked on profile (PUT /customers/{id}/consents) while the partner polls
GET /partner/v1/customers/{ref}; the delay is from sending the revocation to the first 404.

    .venv/bin/python services/partner-share/tools/bench_revocation.py --database sqlite
    .venv/bin/python services/partner-share/tools/bench_revocation.py --database postgresql
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.pytest_plugin import POSTGRES_ADMIN_URL
from rapport_events.testing.stack import DEV_TOKEN, Stack

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
POLL_PAUSE_S = 0.005
GIVE_UP_S = 30.0


async def database(kind: str, label: str, workdir: Path, created: list[str]) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / (label + '.db')}"
    name = f"rapport_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    created.append(name)
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def drop(names: list[str]) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def shared_customers(
    profile: httpx.AsyncClient, partner_share: httpx.AsyncClient, partner_id: str, count: int
) -> list[tuple[str, str]]:
    """`count` customers sharing their contact slice with the partner: (customer id, ref)."""
    ids = []
    for number in range(count):
        created = await profile.post(
            "/customers",
            json={
                "email": f"bench{number}-{uuid.uuid4().hex[:6]}@example.com",
                "first_name": "Ada",
                "last_name": f"Lovelace {number}",
            },
        )
        created.raise_for_status()
        customer_id = created.json()["id"]
        consent = await profile.put(
            f"/customers/{customer_id}/consents",
            json={
                "purpose": "partner_sharing",
                "partner_id": partner_id,
                "slices": ["contact"],
                "granted": True,
            },
        )
        consent.raise_for_status()
        ids.append(customer_id)
    return [(customer_id, await filled_ref(partner_share, customer_id)) for customer_id in ids]


async def filled_ref(partner_share: httpx.AsyncClient, customer_id: str) -> str:
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        export = (await partner_share.get(f"/customers/{customer_id}/export")).json()
        for consent in export["records"]["consents"]:
            if consent["granted"] and not consent["fill_pending"]:
                return str(consent["ref"])
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the consent of {customer_id} never reached partner-share")


async def revocation_delay(
    profile: httpx.AsyncClient,
    partner_api: httpx.AsyncClient,
    partner_id: str,
    customer_id: str,
    ref: str,
) -> float:
    """Seconds from sending the revocation on profile to the partner's first 404."""
    before = await partner_api.get(f"/partner/v1/customers/{ref}")
    if before.status_code != 200:
        raise RuntimeError(f"the partner cannot read {ref} before the revocation: {before.text}")
    started = time.perf_counter()
    revoked = await profile.put(
        f"/customers/{customer_id}/consents",
        json={"purpose": "partner_sharing", "partner_id": partner_id, "granted": False},
    )
    revoked.raise_for_status()
    while time.perf_counter() - started < GIVE_UP_S:
        reply = await partner_api.get(f"/partner/v1/customers/{ref}")
        if reply.status_code == 404:
            return time.perf_counter() - started
        await asyncio.sleep(POLL_PAUSE_S)
    raise TimeoutError(f"{ref} was still readable {GIVE_UP_S}s after the revocation")


def summary(delays: list[float]) -> dict[str, float | int]:
    ordered = sorted(delay * 1000 for delay in delays)

    def percentile(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 1)

    return {
        "revocations": len(ordered),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(ordered[-1], 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
        "over_1s": sum(1 for delay in ordered if delay > 1000),
    }


async def measure(profile_url: str, partner_share_url: str, revocations: int) -> dict:
    async with (
        httpx.AsyncClient(base_url=profile_url, headers=AUTH, timeout=30) as profile,
        httpx.AsyncClient(base_url=partner_share_url, headers=AUTH, timeout=30) as partner_share,
    ):
        registered = await partner_share.post(
            "/partners",
            json={
                "name": "Bench Travel",
                "industry": "travel",
                "slices": ["contact"],
                "purposes": ["cross_selling"],
                # The partner polls as fast as it can; the rate limit is not what is measured.
                "rate_limit_per_second": 10_000,
                "rate_limit_burst": 100_000,
            },
        )
        registered.raise_for_status()
        partner = registered.json()
        customers = await shared_customers(profile, partner_share, partner["id"], revocations)
        async with httpx.AsyncClient(
            base_url=partner_share_url, headers={"X-API-Key": partner["api_key"]}, timeout=30
        ) as partner_api:
            delays = [
                await revocation_delay(profile, partner_api, partner["id"], customer_id, ref)
                for customer_id, ref in customers
            ]
    return summary(delays)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--revocations", type=int, default=100)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-revocation-"))
    created: list[str] = []
    broker = TansuBroker(log_path=workdir / "tansu.log").start()
    stacks: list[Stack] = []
    try:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC": f"rapport.bench-{uuid.uuid4().hex[:8]}",
            "KAFKA_PARTITIONS": "3",
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
            "OTEL_SDK_DISABLED": "true",
        }
        profile_db = await database(args.database, "profile", workdir, created)
        profile = Stack(workdir=workdir, env=env, databases={"profile": profile_db})
        stacks.append(profile.start(["profile"]))
        partner_share_db = await database(args.database, "partner_share", workdir, created)
        partner_share = Stack(
            workdir=workdir,
            env={**env, "PARTNER_SHARE_PROFILE_URL": profile.url("profile")},
            databases={"partner-share": partner_share_db},
        )
        stacks.append(partner_share.start(["partner-share"]))
        for stack in stacks:
            stack.wait_ready(timeout=60)
        result = await measure(
            profile.url("profile"), partner_share.url("partner-share"), args.revocations
        )
        print(json.dumps({**result, "database": args.database}, indent=2))
    finally:
        for stack in stacks:
            stack.stop()
        broker.stop()
        if created:
            await drop(created)


if __name__ == "__main__":
    asyncio.run(main())
