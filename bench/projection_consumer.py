"""A service's real projection without a broker: N events through its consumer runner.

`uv run --frozen python bench/projection_consumer.py [--service profile|campaign]
[--events N] [--mix sorted|interleaved] [--per-transaction 50,500] [--database URL]`
feeds fake records to `ConsumerRunner._handle_records` with the service's HANDLERS on a
fresh SQLite file (or the given PostgreSQL database, emptied first), in slices of what
one fetch brings (500), and prints events/s of wall clock and per CPU-second of the
process (steadier on a shared machine). Every event goes through the inbox, the
handlers and a commit, as in a running service.

`--mix interleaved` draws interaction.tracked and cart.updated at random for each event
(types alternate on almost every record); `sorted` sends runs of 100 of one type.
Campaign gets two segments first (one on carts), so every run is also tested against
segments, as in production.
"""

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from aiokafka import TopicPartition

from rapport_events.codec import Envelope, encode
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.types import CartUpdated, Event, InteractionTracked

TOPIC = "rapport.bench-projection"
FETCH = 500
CUSTOMERS = 500
SEGMENTS = {
    "browsers": {"event": "interaction.tracked", "at_least": 4},
    "carts": {"event": "cart.updated"},
}


def events(count: int, mix: str) -> list[Event]:
    """`count` page views and cart views over CUSTOMERS customers."""
    rng = random.Random(7)
    out: list[Event] = []
    for n in range(count):
        customer = f"c-{rng.randrange(CUSTOMERS)}"
        cart_turn = rng.random() < 0.3 if mix == "interleaved" else (n // 100) % 3 == 2
        if cart_turn:
            out.append(
                CartUpdated(customer_id=customer, cart_id=f"k-{customer}", action="cart_viewed")
            )
        else:
            out.append(
                InteractionTracked(customer_id=customer, kind="page", name=f"p{n}", url="/x")
            )
    return out


def records(of: Sequence[Event]) -> list[FakeRecord]:
    out = []
    for n, event in enumerate(of):
        message = encode(Envelope(data=event, source="/bench"))
        out.append(FakeRecord(TOPIC, 0, n, message.key, message.value, list(message.headers)))
    return out


def service_module(name: str) -> tuple[ModuleType, ModuleType]:
    if name == "profile":
        import rapport_profile.handlers as handlers
        import rapport_profile.main as main
    else:
        import rapport_campaign.handlers as handlers  # type: ignore[no-redef]
        import rapport_campaign.main as main  # type: ignore[no-redef]
    return handlers, main


async def prepare(service: str, url: str) -> tuple[Any, dict[str, Any]]:
    """A migrated database and the dependencies the handlers ask for."""
    handlers, main = service_module(service)
    engine = create_engine(url)
    if url.startswith("postgresql"):
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    await upgrade(engine, main.MIGRATIONS, version_table=f"alembic_version_{service}")
    if service == "profile":
        from rapport_profile.settings import Settings as ProfileSettings

        return engine, {"settings": ProfileSettings(environment="development")}
    if service != "campaign":
        return engine, {}
    from rapport_campaign.segments import service as campaign
    from rapport_campaign.segments.models import SegmentCreate
    from rapport_campaign.settings import Settings

    settings = Settings(environment="development")
    async with transaction(session_factory(engine)) as session:
        for name, rule in SEGMENTS.items():
            await campaign.create_segment(
                session, SegmentCreate.model_validate({"name": name, "rule": rule}), settings
            )
    return engine, {"settings": settings}


async def measure(
    service: str, todo: list[FakeRecord], per_transaction: int, url: str
) -> tuple[float, float]:
    """Events per second of wall clock and per second of this process's CPU."""
    handlers, _ = service_module(service)
    engine, dependencies = await prepare(service, url)
    runner = ConsumerRunner(
        service=service,
        settings=KafkaSettings(topic=TOPIC, consumer_transaction_max_records=per_transaction),
        session_factory=session_factory(engine),
        handlers=handlers.HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies=dependencies,
    )
    partition = TopicPartition(TOPIC, 0)
    started, cpu = time.perf_counter(), time.process_time()
    # As ConsumerRunner._run slices a fetch.
    for fetch in range(0, len(todo), FETCH):
        fetched = todo[fetch : fetch + FETCH]
        for first in range(0, len(fetched), per_transaction):
            await runner._handle_records(partition, fetched[first : first + per_transaction])  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    assert runner.applied == len(todo) and not runner.dead_lettered, runner.applied
    return len(todo) / elapsed, len(todo) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=["profile", "campaign"], default="profile")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--mix", choices=["sorted", "interleaved"], default="interleaved")
    parser.add_argument("--per-transaction", default="50,500")
    parser.add_argument("--database", help="a PostgreSQL URL (emptied); default a new SQLite file")
    args = parser.parse_args()
    todo = records(events(args.events, args.mix))
    for size in map(int, args.per_transaction.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database or f"sqlite:///{Path(folder) / 'bench.db'}"
            wall, cpu = asyncio.run(measure(args.service, todo, size, url))
        print(
            f"{args.service}: {args.events} events ({args.mix}), {size} per transaction: "
            f"{wall:,.0f} events/s ({cpu:,.0f} per CPU-second)"
        )


if __name__ == "__main__":
    main()
