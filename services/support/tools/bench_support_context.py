"""Latency of GET /customers/{id}/support-context under load, on SQLite or PostgreSQL.

Seeds a support database (customers with consents, products and a ticket history), runs support
as its own uvicorn process next to a Tansu broker, warms up, then sends a bounded number of
requests from a fixed number of concurrent clients on loopback and prints the percentiles.

    .venv/bin/python services/support/tools/bench_support_context.py --database sqlite
    .venv/bin/python services/support/tools/bench_support_context.py --database postgresql
"""

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from rapport_events.base import utcnow
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.pytest_plugin import POSTGRES_ADMIN_URL
from rapport_events.testing.stack import DEV_TOKEN, Stack
from rapport_events.types import ConsentGranted, CustomerRegistered, LineItem, OrderCompleted
from rapport_support import service
from rapport_support.main import MIGRATIONS, VERSION_TABLE
from rapport_support.models import CommentCreate, TicketCreate, TicketUpdate
from rapport_support.settings import Settings

MODELS = ["ZenBook 14", "Barista X2", "Pixel 9", "ThinkPad T14", "Galaxy S25", "K1 Kettle"]
PROBLEMS = [
    ("Battery drains overnight", "power", "BIOS update"),
    ("Screen flickers", "display", "Replaced the display cable"),
    ("Leaks water", "hardware", "Replaced the tank seal"),
    ("Will not pair over bluetooth", "connectivity", "Reset the network settings"),
]


async def seed(url: str, customers: int, products: int, tickets: int) -> list[str]:
    """Customers with consents, `products` products and `tickets` tickets each."""
    engine = create_engine(url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    sessions = session_factory(engine)
    settings = Settings(database_url=url)
    rng = random.Random(7)
    ids = []
    for number in range(customers):
        customer_id = str(uuid.uuid4())
        ids.append(customer_id)
        async with transaction(sessions) as session:
            await service.add_registered_customer(
                session,
                settings,
                CustomerRegistered(
                    customer_id=customer_id,
                    email=f"customer{number}@example.com",
                    phone="+14155550100",
                    first_name="Ada",
                    last_name=f"Lovelace {number}",
                    social_handles={"twitter": f"@customer{number}"},
                ),
            )
            for version, channel in enumerate(("email", "sms"), start=1):
                await service.apply_consent(
                    session,
                    ConsentGranted(
                        customer_id=customer_id,
                        purpose="marketing",
                        channel=channel,
                        source="web_form",
                        version=version,
                    ),
                )
            await service.record_order(
                session,
                settings,
                OrderCompleted(
                    customer_id=customer_id,
                    order_id=f"ord-{number}",
                    occurred_at=utcnow() - timedelta(days=rng.randint(1, 900)),
                    revenue=Decimal(100 * products),
                    items=tuple(
                        LineItem(
                            product_id=f"sku-{line}",
                            product_model=rng.choice(MODELS),
                            price=Decimal(100),
                            serial_number=f"SN-{number}-{line}",
                        )
                        for line in range(products)
                    ),
                ),
            )
            for _ in range(tickets):
                subject, category, resolution = rng.choice(PROBLEMS)
                ticket = await service.open_ticket(
                    session,
                    settings,
                    TicketCreate(
                        customer_id=customer_id,
                        subject=subject,
                        description=f"{subject}. Customer called twice about it.",
                        category=category,
                        product_model=rng.choice(MODELS),
                    ),
                )
                await service.add_comment(
                    session, settings, ticket.id, CommentCreate(body="Looking", author="grace")
                )
                await service.update_ticket(
                    session,
                    settings,
                    ticket.id,
                    TicketUpdate(status="resolved", resolution=resolution),
                )
    await engine.dispose()
    return ids


async def load(base_url: str, ids: list[str], requests: int, concurrency: int) -> dict:
    """`requests` GETs from `concurrency` clients at once; latencies in milliseconds."""
    latencies: list[float] = []
    errors = 0
    pending = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {DEV_TOKEN}"},
        limits=limits,
        timeout=30,
    ) as client:

        async def worker(seed_value: int) -> None:
            nonlocal errors
            rng = random.Random(seed_value)
            for _ in pending:
                customer_id = rng.choice(ids)
                started = time.perf_counter()
                response = await client.get(f"/customers/{customer_id}/support-context")
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 2)

    return {
        "requests": len(latencies),
        "concurrency": concurrency,
        "errors": errors,
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


async def postgres_database() -> tuple[str, str]:
    name = f"rapport_bench_support_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--products", type=int, default=3)
    parser.add_argument("--tickets", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-support-"))
    pg_name = None
    if args.database == "postgresql":
        pg_name, url = await postgres_database()
    else:
        url = f"sqlite:///{workdir / 'support.db'}"
    broker = TansuBroker(log_path=workdir / "tansu.log").start()
    stack = None
    try:
        ids = await seed(url, args.customers, args.products, args.tickets)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC": f"rapport.bench-{uuid.uuid4().hex[:8]}",
            "KAFKA_PARTITIONS": "3",
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        }
        stack = Stack(workdir=workdir, env=env, databases={"support": url}).start(["support"])
        stack.wait_ready(timeout=60)
        base_url = stack.url("support")
        await load(base_url, ids, args.warmup, args.concurrency)
        result = await load(base_url, ids, args.requests, args.concurrency)
        result |= {
            "database": args.database,
            "customers": args.customers,
            "products_each": args.products,
            "tickets_each": args.tickets,
        }
        print(json.dumps(result, indent=2))
    finally:
        if stack is not None:
            stack.stop()
        broker.stop()
        if pg_name is not None:
            await drop_postgres_database(pg_name)


if __name__ == "__main__":
    asyncio.run(main())
