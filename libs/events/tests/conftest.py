"""Fixtures of the event library's tests: spans in memory, outbox and inbox tables, the harness."""

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.inbox import InboxEntry
from rapport_events.outbox import OutboxMessage
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import DOWNSTREAM, UPSTREAM, Harness, HarnessFactory
from rapport_events.testing.pytest_plugin import DatabaseFactory, test_kafka_settings


@pytest.fixture
def kafka_settings(kafka_broker: TansuBroker) -> KafkaSettings:
    """The session broker on a fresh topic, with the relay as a service runs it (sent rows
    deleted), not as service tests keep them."""
    return test_kafka_settings(kafka_broker.bootstrap_servers)


@pytest.fixture
async def make_harness(database_factory: DatabaseFactory) -> AsyncIterator[HarnessFactory]:
    """Builds harnesses on databases of the parametrised kind (SQLite, PostgreSQL)."""
    made: list[Harness] = []

    async def make(settings: KafkaSettings, group: str = DOWNSTREAM) -> Harness:
        harness = Harness(
            settings,
            await database_factory(UPSTREAM),
            await database_factory(DOWNSTREAM),
            group=group,
        )
        made.append(harness)
        return await harness.setup()

    yield make
    for harness in reversed(made):
        with contextlib.suppress(Exception):
            await harness.close()


@pytest.fixture
async def harness(make_harness: HarnessFactory, kafka_settings: KafkaSettings) -> Harness:
    """A harness on the session broker, on a topic and a consumer group of its own.

    Its own group: a member an earlier test left behind in a shared one would hold up
    every later join on the session broker.
    """
    return await make_harness(kafka_settings, f"{DOWNSTREAM}-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def event_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty SQLite or PostgreSQL database with only the outbox and inbox."""
    engine = create_engine(database_url)
    tables = [OutboxMessage.__table__, InboxEntry.__table__]
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: SQLModel.metadata.create_all(sync, tables=tables)  # type: ignore[arg-type]
        )
    yield engine
    await engine.dispose()


@pytest.fixture
def event_sessions(event_engine: AsyncEngine) -> SessionFactory:
    """Sessions on `event_engine`, as a service builds them."""
    return session_factory(event_engine)
