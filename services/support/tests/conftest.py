"""Fixtures of support's tests: migrated databases, the app on a real broker, the log; and,
for the unit layer, the use cases' stores and outbox in memory."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlmodel import col, select

from rapport_events.base import Event
from rapport_events.codec import Envelope, decode, encode
from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import (
    consumes_events,
    drain_outbox,
    poll_until,
    wait_until_ready,
)
from rapport_events.testing.pytest_plugin import Migrations
from rapport_support.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_support.settings import Settings
from rapport_support.testing import FakeSupportUnitOfWork

TOKEN = "support-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Fetch = Callable[[], Awaitable[httpx.Response]]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions on a migrated support database (SQLite or PostgreSQL)."""
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def settings() -> Settings:
    """Settings for service-level tests: they never reach a broker."""
    return Settings(
        database_url="sqlite:///unused.db",
        api_token=TOKEN,
        kafka=KafkaSettings(topic="rapport.support-unit"),
        warranty_months_by_category={"laptops": 12},
        warranty_months_by_model={"Barista X2": 36},
    )


async def outbox_events(sessions: SessionFactory) -> list[Event]:
    """Every event written to the outbox, oldest first."""
    async with sessions() as session:
        rows = (
            await session.exec(
                select(OutboxMessage).where(is_event()).order_by(col(OutboxMessage.id))
            )
        ).all()
    return [
        decode(row.value, [(name, value.encode()) for name, value in row.headers]).data
        for row in rows
    ]


@pytest.fixture
def outbox() -> Callable[[SessionFactory], Awaitable[list[Event]]]:
    return outbox_events


@pytest.fixture
def poll() -> Callable[..., Awaitable[httpx.Response]]:
    return poll_until


@pytest.fixture
def drain() -> Callable[[FastAPI], Awaitable[None]]:
    return drain_outbox


def app_settings(database_url: str, kafka: KafkaSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "kafka": kafka,
        "sla_check_interval_s": 0.2,
        "reply_poll_interval_s": 0.1,
        "webhook_backoff_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def make_app(
    database_url: str, kafka_settings: KafkaSettings, request: pytest.FixtureRequest
) -> AppFactory:
    """Runs the support app (lifespan included) with settings overrides, and a client for it."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        app = create_app(app_settings(database_url, kafka_settings, **overrides))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://support") as client,
        ):
            if consumes_events(request):
                await wait_until_ready(app)
            yield app, client
            await drain_outbox(app)

    return make


@pytest.fixture
async def app_and_client(make_app: AppFactory) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with make_app() as running:
        yield running


@pytest.fixture
def app(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    """The support app with its lifespan, on a real database and the test broker."""
    return app_and_client[0]


@pytest.fixture
def client(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


async def publish_events(
    settings: KafkaSettings, *events: Event, source: str = "/services/profile"
) -> None:
    """Put events on the log the way any CloudEvents producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            message = encode(Envelope(data=event, source=source))
            await producer.send_and_wait(
                settings.topic, value=message.value, key=message.key, headers=message.headers
            )
    finally:
        await producer.stop()


@pytest.fixture
def publish() -> Callable[..., Awaitable[None]]:
    return publish_events


async def read_log(
    settings: KafkaSettings, wanted: Callable[[list[Envelope]], bool], timeout: float = 15.0
) -> list[Envelope]:
    """Read the topic from the start until `wanted(envelopes)` holds or the time is up."""
    consumer = AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    envelopes: list[Envelope] = []
    try:
        deadline = time.monotonic() + timeout
        while not wanted(envelopes) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                envelopes.extend(decode(record.value, record.headers) for record in records)
    finally:
        await consumer.stop()
    return envelopes


@pytest.fixture(name="read_log")
def read_log_fixture() -> Callable[..., Awaitable[list[Envelope]]]:
    return read_log


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
def uow() -> FakeSupportUnitOfWork:
    """The tickets', mentions' and products' stores and outbox in memory: no database."""
    return FakeSupportUnitOfWork()
