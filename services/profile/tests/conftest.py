"""Profile's tests start from a migrated database (see `database_template`); sessions and an
engine on it, and the app with its lifespan and a client for it; and, for the unit layer,
the customers' and consents' stores and outbox in memory."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import app_settings, migrated
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import consumes_events, drain_outbox, wait_until_ready
from rapport_events.testing.pytest_plugin import Migrations
from rapport_profile.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_profile.testing import FakeProfileUnitOfWork


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def app(
    database_url: str, kafka_settings: KafkaSettings, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    """Profile with its real lifespan, on the test database and broker."""
    app = create_app(app_settings(database_url, kafka_settings))
    async with app.router.lifespan_context(app):
        if consumes_events(request):
            await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
        yield client


@pytest.fixture
def uow() -> FakeProfileUnitOfWork:
    """A unit of work in memory: no database, so its tests are in the unit layer."""
    return FakeProfileUnitOfWork()
