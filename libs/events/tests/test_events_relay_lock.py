"""One active relay per PostgreSQL database: the advisory lock, standby and failover."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from rapport_events import outbox
from rapport_events.codec import decode
from rapport_events.db import SessionFactory, create_engine, session_factory, transaction
from rapport_events.http import health_router
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.outbox import OutboxMessage
from rapport_events.relay import OutboxRelay
from rapport_events.relay_lock import AdvisoryLock, relay_lock_for
from rapport_events.runtime import EventRuntime
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import until
from rapport_events.testing.pytest_plugin import POSTGRES_ADMIN_URL
from rapport_events.types import InteractionTracked

SOURCE = "/services/profile"
KEYS = [f"customer-{n}" for n in range(12)]
# Every bound below is generous for a loaded machine; the measured failover is printed.
FAILOVER_BOUND_S = 5.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(
            SQLModel.metadata.create_all,
            tables=[OutboxMessage.__table__],  # type: ignore[attr-defined]
        )
    yield engine
    await engine.dispose()


def postgres_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one process, so one relay, and no lock")


def lock_of(engine: AsyncEngine, check_s: float = 0.2) -> AdvisoryLock:
    lock = relay_lock_for(engine, check_s=check_s, idle_timeout_s=5.0)
    assert lock is not None
    return lock


async def terminate(pid: int | None) -> None:
    """What an operator's pg_terminate_backend, or a dropped connection, does to a session."""
    assert pid is not None
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


class TestAdvisoryLock:
    async def test_sqlite_has_no_lock(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "sqlite":
            pytest.skip("the SQLite case")
        assert relay_lock_for(engine) is None

    async def test_one_holder_at_a_time_and_released_with_its_session(
        self, engine: AsyncEngine
    ) -> None:
        postgres_only(engine)
        first, second = lock_of(engine), lock_of(engine)
        try:
            assert await first.try_acquire()
            assert not await second.try_acquire()
            assert (first.held, second.held) == (True, False)

            began = time.monotonic()
            await terminate(first.backend_pid)
            await until(lambda: first.lost.is_set(), timeout=5, what="the holder to learn")
            lost_after = time.monotonic() - began

            assert not first.held
            assert first.lost_reason is not None
            assert lost_after < 1.0
            assert await second.try_acquire()
            assert not await first.try_acquire()  # the lock is the other session's now
        finally:
            await first.release()
            await second.release()

    async def test_a_released_lock_goes_to_the_next_at_once(self, engine: AsyncEngine) -> None:
        postgres_only(engine)
        first, second = lock_of(engine), lock_of(engine)
        try:
            assert await first.try_acquire()
            await first.release()
            assert await second.try_acquire()
        finally:
            await second.release()

    async def test_a_check_that_fails_loses_the_lock(self, engine: AsyncEngine) -> None:
        postgres_only(engine)
        lock = lock_of(engine)
        try:
            assert await lock.try_acquire()
            await lock.check()
            assert lock.held
            connection = lock._connection
            assert connection is not None
            connection.terminate()  # as a network gone quiet would leave it
            await lock.check()
            assert not lock.held and lock.lost.is_set()
        finally:
            await lock.release()


async def write_in_turns(sessions: SessionFactory, topic: str, count: int) -> list[str]:
    """`count` events over KEYS, a few per transaction, like requests; returns their ids."""
    ids: list[str] = []
    for seq in range(count):
        async with transaction(sessions) as session:
            event = InteractionTracked(
                customer_id=KEYS[seq % len(KEYS)], kind="page", name=f"page {seq}"
            )
            ids.append(outbox.add(session, event, source=SOURCE, topic=topic).id)
        if seq % 10 == 0:
            await asyncio.sleep(0.005)
    return ids


async def read_topic(settings: KafkaSettings, count: int, timeout: float = 30.0) -> list[Any]:
    """Every record of the topic, in each partition's order, once `count` distinct ids are in."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(settings.topic, p) for p in range(settings.partitions)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            if len({dict(r.headers).get("ce_id") for r in records}) >= count:
                break
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


class TestFailover:
    """Two relays on one database and a real broker: one publishes; the other takes over."""

    async def test_only_one_publishes_and_the_standby_takes_over_in_order_losing_nothing(
        self, engine: AsyncEngine, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        postgres_only(engine)
        settings = kafka_settings.model_copy(
            update={"relay_lock_check_s": 0.2, "relay_batch_size": 50}
        )
        await ensure_topics(settings, [settings.topic])
        replica_engine = create_engine(database_url)  # the second replica's own pool
        writer = session_factory(engine)
        relays: list[OutboxRelay] = []
        producers = [create_producer(settings, client_id=f"replica-{n}") for n in range(2)]
        try:
            for producer, replica in zip(producers, (engine, replica_engine), strict=True):
                await producer.start()
                relays.append(
                    OutboxRelay(session_factory(replica), producer, settings, lock=lock_of(replica))
                )
            first, second = relays
            first.start()
            await until(lambda: first.role == "active", timeout=10, what="a first holder")
            second.start()

            writing = asyncio.create_task(write_in_turns(writer, settings.topic, 600))
            await until(lambda: first.published >= 100, timeout=20, what="the first publishing")
            assert (second.role, second.published) == ("standby", 0)

            began = time.monotonic()
            await terminate(first.lock.backend_pid if first.lock else None)
            await until(lambda: second.published > 0, timeout=20, what="the standby publishing")
            failover_s = time.monotonic() - began
            assert first.role == "standby"
            published_by_first = first.published

            written = await writing

            async def every_row_published() -> bool:
                # Rows, not events: a customer's first event also sends its data key's record.
                return (await second.backlog())[0] == 0

            await until(every_row_published, timeout=30, what="every row published")
            assert second.published >= len(written) - published_by_first
            assert first.published == published_by_first  # the standby sent nothing more
        finally:
            for relay in relays:
                await relay.stop()
            for producer in producers:
                await producer.stop()
            await replica_engine.dispose()

        records = await read_topic(settings, len(written))
        first_copies: dict[str, list[int]] = {}
        seen: set[str] = set()
        for record in records:
            envelope = decode(record.value, record.headers)
            if envelope.id in seen:
                continue  # a copy, dropped by the consumers' inbox
            seen.add(envelope.id)
            first_copies.setdefault(envelope.subject, []).append(written.index(envelope.id))
        assert seen == set(written), "every event is on the log"
        for key, order in first_copies.items():
            assert order == sorted(order), f"{key}'s events out of order"
        print(f"relay failover: {failover_s * 1000:.0f} ms, {len(records) - len(written)} copies")
        assert failover_s < FAILOVER_BOUND_S


class TestReplicas:
    """Two service replicas on one PostgreSQL database: one relay active, both ready."""

    async def test_the_second_replica_stands_by_and_is_ready(
        self, engine: AsyncEngine, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        postgres_only(engine)
        settings = kafka_settings.model_copy(update={"relay_lock_check_s": 0.2})
        replica_engine = create_engine(database_url)
        runtimes = [
            EventRuntime(service="profile", engine=replica, settings=settings)
            for replica in (engine, replica_engine)
        ]
        try:
            for runtime in runtimes:
                await runtime.start()
                await asyncio.wait_for(runtime.connected.wait(), 30)
            await until(
                lambda: sorted(r.relay_role() for r in runtimes) == ["active", "standby"],
                timeout=10,
                what="one active relay and one standby",
            )
            for runtime in runtimes:
                app = FastAPI()
                app.include_router(health_router())
                app.state.runtime = runtime
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                    response = await client.get("/readyz")
                assert response.status_code == 200, response.json()
                assert response.json()["relay"] == runtime.relay_role()

            active = next(r for r in runtimes if r.relay_role() == "active")
            await active.stop()  # a rolling update: the old pod goes, its lock with it
            standby = next(r for r in runtimes if r is not active)
            await until(
                lambda: standby.relay_role() == "active", timeout=5, what="the standby's takeover"
            )
        finally:
            for runtime in runtimes:
                await runtime.stop()
            await replica_engine.dispose()
