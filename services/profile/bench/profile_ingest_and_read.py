"""Profile's two headline numbers, on this machine:

- tracking ingest: events/s through POST /v1/batch, accepted and end to end (in the timeline,
  after the outbox relay, the broker and profile's own consumer);
- the p50/p99 latency of GET /customers/{id}.

Runs profile under uvicorn on a free port against a throw-away Tansu broker.

    .venv/bin/python services/profile/bench/profile_ingest_and_read.py sqlite:///var/bench.db
    .venv/bin/python services/profile/bench/profile_ingest_and_read.py \\
        postgresql://postgres@127.0.0.1:5432/profile_bench   # an empty database
"""

import argparse
import asyncio
import base64
import json
import math
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import func
from sqlmodel import select

from rapport_events.db import create_engine, session_factory
from rapport_events.testing.broker import TansuBroker, free_port
from rapport_events.testing.pytest_plugin import test_kafka_settings
from rapport_profile.main import create_app
from rapport_profile.models import TimelineEntry
from rapport_profile.settings import Settings

TOKEN, WRITE_KEY = "bench-token", "bench-write-key"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


async def run(database_url: str, customers: int, batches: int, per_batch: int, reads: int) -> dict:
    broker = TansuBroker(log_path=Path(tempfile.mkdtemp()) / "tansu.log").start()
    settings = Settings(
        database_url=database_url,
        api_token=TOKEN,
        write_keys=[WRITE_KEY],
        kafka=test_kafka_settings(broker.bootstrap_servers),
        campaign_url="",
        support_url="",
        partner_share_url="",
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # The server's loop owns its engine; counting uses one of our own.
    counter = session_factory(create_engine(database_url))

    async def timeline_rows() -> int:
        async with counter() as session:
            return int((await session.exec(select(func.count()).select_from(TimelineEntry))).one())

    async def wait_for_rows(count: int, deadline: float) -> None:
        while await timeline_rows() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timeline stuck below {count} rows")
            await asyncio.sleep(0.05)

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("profile never became ready")
                await asyncio.sleep(0.2)
            ids = []
            for n in range(customers):
                created = await client.post(
                    "/customers",
                    headers=AUTH,
                    json={"email": f"c{n}@bench.example", "first_name": "A", "last_name": "B"},
                )
                ids.append(created.json()["id"])
            await wait_for_rows(customers, time.monotonic() + 120)
            base, total = await timeline_rows(), batches * per_batch
            started = time.monotonic()
            for b in range(batches):
                batch = [
                    {
                        "type": "track",
                        "userId": ids[(b * per_batch + i) % len(ids)],
                        "event": "Video Played",
                        "messageId": f"bench-{b}-{i}",
                        "properties": {"i": i},
                    }
                    for i in range(per_batch)
                ]
                reply = await client.post("/v1/batch", headers=BASIC, json={"batch": batch})
                reply.raise_for_status()
            accepted = time.monotonic() - started
            await wait_for_rows(base + total, started + 300)
            end_to_end = time.monotonic() - started
            latencies = []
            for n in range(reads):
                sent = time.perf_counter()
                (
                    await client.get(f"/customers/{ids[n % len(ids)]}", headers=AUTH)
                ).raise_for_status()
                latencies.append((time.perf_counter() - sent) * 1000)
        latencies.sort()
        return {
            "database": database_url.split(":", 1)[0],
            "events": total,
            "accepted_events_per_s": round(total / accepted),
            "end_to_end_events_per_s": round(total / end_to_end),
            "get_customer_p50_ms": round(nearest_rank(latencies, 0.50), 2),
            "get_customer_p99_ms": round(nearest_rank(latencies, 0.99), 2),
        }
    finally:
        server.should_exit = True
        thread.join(30)
        broker.stop()


def nearest_rank(ordered: list[float], share: float) -> float:
    """The smallest value with at least `share` of the values at or below it."""
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--per-batch", type=int, default=100)
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.database_url, args.customers, args.batches, args.per_batch, args.reads)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
