"""Campaign's sender and partner-share's rate limit with one and two replicas, in one run.

`python -m bench.worker_replicas [--messages N] [--rounds R]` prints JSON.

On a fresh PostgreSQL database (RAPPORT_TEST_POSTGRES_URL, default the local server),
a campaign of N e-mail messages is sent to a real SMTP server (aiosmtpd on loopback) by one
sender, then by two senders each on an engine of its own (as two replicas are), round after
round so drift on a busy machine hits both alike. It counts what the SMTP server received:
every message must arrive exactly once. Then it times the partner rate limit: takes per
second of the in-process limiter and of the one shared in PostgreSQL.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller

from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import CampaignCreate
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.main import MIGRATIONS as CAMPAIGN_MIGRATIONS
from rapport_campaign.main import VERSION_TABLE as CAMPAIGN_VERSIONS
from rapport_campaign.settings import Settings
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.worker import Worker
from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.fakes import FakeProducer
from rapport_events.types import ConsentGranted, CustomerRegistered
from rapport_partner_share.main import MIGRATIONS as SHARE_MIGRATIONS
from rapport_partner_share.main import VERSION_TABLE as SHARE_VERSIONS
from rapport_partner_share.partners.ratelimit import RateLimiter, SharedRateLimiter

ADMIN = os.environ.get("RAPPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class Sink:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for line in envelope.content.splitlines():
            if line.startswith(b"X-Rapport-Message-Id:"):
                self.received[line.split(b":", 1)[1].strip().decode()] += 1
        return "250 OK"


async def fresh_database() -> str:
    name = f"bench_replicas_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(ADMIN.replace("postgresql://", "postgres://"))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str) -> None:
    connection = await asyncpg.connect(ADMIN.replace("postgresql://", "postgres://"))
    await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await connection.close()


async def audience(sessions: Any, settings: Settings, customers: list[str]) -> None:
    runner = ConsumerRunner(
        service="campaign",
        settings=KafkaSettings(),
        session_factory=sessions,
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": settings},
    )
    events = []
    for customer_id in customers:
        events.append(
            CustomerRegistered(
                customer_id=customer_id,
                email=f"{customer_id}@example.com",
                first_name="Ada",
                last_name="Bench",
            )
        )
        events.append(
            ConsentGranted(
                customer_id=customer_id,
                purpose="marketing",
                channel="email",
                source="web_form",
                version=1,
            )
        )
    for event in events:
        await runner.apply(Envelope(data=event, source="/services/profile"), HANDLERS[type(event)])


async def send_round(
    url: str, settings: Settings, customers: list[str], replicas: int
) -> dict[str, Any]:
    engines = [create_engine(url) for _ in range(replicas)]
    sessions = [session_factory(engine) for engine in engines]
    async with transaction(sessions[0]) as session:
        campaign = await campaign_service.create_campaign(
            session,
            CampaignCreate.model_validate(
                {
                    "name": f"Bench {uuid.uuid4().hex[:6]}",
                    "channel": "email",
                    "variants": [{"name": "A", "subject": "Hi", "body": "Hello"}],
                    "audience": {"customer_ids": customers},
                    "frequency_cap": {"max_messages": 1000, "per_hours": 1},
                }
            ),
        )
        await campaign_service.launch_campaign(session, campaign.id, None)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    config = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": controller.port})
    started = time.perf_counter()
    async with httpx.AsyncClient() as http:
        workers = [
            Worker(
                sessions=s, settings=config, tokens=Tokens("secret", config.public_url), http=http
            )
            for s in sessions
        ]

        async def drain(worker: Worker) -> None:
            claimed = await worker.send_once()
            while claimed:
                claimed = await worker.send_once()

        await asyncio.gather(*(drain(worker) for worker in workers))
    elapsed = time.perf_counter() - started
    controller.stop()
    for engine in engines:
        await engine.dispose()
    return {
        "messages_per_s": len(customers) / elapsed,
        "received": sum(sink.received.values()),
        "duplicates": sum(n - 1 for n in sink.received.values()),
        "per_replica": [worker.sent for worker in workers],
    }


async def limiter_rate(limiter: Any, takes: int) -> float:
    started = time.perf_counter()
    for n in range(takes):
        await limiter.take(f"partner-{n % 8}", rate=1e6, burst=1_000_000)
    return takes / (time.perf_counter() - started)


async def measure(messages: int = 400, rounds: int = 3) -> dict[str, Any]:
    url = await fresh_database()
    try:
        engine = create_engine(url)
        await upgrade(engine, CAMPAIGN_MIGRATIONS, version_table=CAMPAIGN_VERSIONS)
        settings = Settings(
            database_url=url,
            environment="development",
            kafka=KafkaSettings(topic="rapport.bench-replicas"),
            public_url="http://campaign.bench",
        )
        customers = [f"cust-{n:05d}" for n in range(messages)]
        await audience(session_factory(engine), settings, customers)
        results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for _ in range(rounds):
            for replicas in (1, 2):
                results[replicas].append(await send_round(url, settings, customers, replicas))
        await engine.dispose()
    finally:
        await drop_database(url)
    url = await fresh_database()  # partner-share's own database
    try:
        engine = create_engine(url)
        await upgrade(engine, SHARE_MIGRATIONS, version_table=SHARE_VERSIONS)
        await engine.dispose()
        # As partner-share's lifespan builds it.
        engine = create_engine(
            url,
            pool_size=2,
            max_overflow=4,
            connect_args={"server_settings": SharedRateLimiter.SERVER_SETTINGS},
        )
        limits = {
            "local_takes_per_s": await limiter_rate(RateLimiter(), 5000),
            "shared_takes_per_s": await limiter_rate(SharedRateLimiter(engine), 1000),
        }
        await engine.dispose()
    finally:
        await drop_database(url)
    summary = {
        f"{replicas}_sender{'s' if replicas > 1 else ''}": {
            "messages_per_s": round(statistics.median(r["messages_per_s"] for r in rounds_), 1),
            "received": [r["received"] for r in rounds_],
            "duplicates": sum(r["duplicates"] for r in rounds_),
            "per_replica": [r["per_replica"] for r in rounds_],
        }
        for replicas, rounds_ in results.items()
    }
    return {
        "messages": messages,
        "rounds": rounds,
        "sending": summary,
        "rate_limit": {k: round(v) for k, v in limits.items()},
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.messages, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
