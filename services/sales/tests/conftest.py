"""Fixtures of sales' tests: the app on a real database (SQLite and PostgreSQL) and broker,
events handed to its handlers as the consumer would, a stand-in profile over HTTP; and, for
the unit layer, the use cases' stores and outbox in memory."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sales_testing import ProfileStandIn, app_settings

from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.harness import consumes_events, wait_until_ready
from rapport_events.testing.pytest_plugin import Migrations
from rapport_events.testing.replicas import serving
from rapport_sales.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_sales.testing import FakeSalesUnitOfWork

AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def make_app(
    database_url: str,
    kafka_settings: KafkaSettings,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> AppFactory:
    """Runs the sales app (lifespan included) with settings overrides, and a client for it."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        overrides.setdefault("documents_dir", str(tmp_path / "documents"))
        app = create_app(app_settings(database_url, kafka_settings, **overrides))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://sales") as client,
        ):
            if consumes_events(request) or overrides.get("consume_events"):
                await wait_until_ready(app)
            yield app, client

    return make


@pytest.fixture
async def app_and_client(make_app: AppFactory) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with make_app() as running:
        yield running


@pytest.fixture
def app(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    """The sales app with its lifespan, on a real database and the test broker; it does
    not join the consumer group (tests hand it events with `apply`)."""
    return app_and_client[0]


@pytest.fixture
def client(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


@pytest.fixture
async def profile() -> AsyncIterator[ProfileStandIn]:
    stand_in = ProfileStandIn()
    async with serving(stand_in.app(), free_port(), timeout=30, lifespan="auto") as url:
        stand_in.url = url
        yield stand_in


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
def uow() -> FakeSalesUnitOfWork:
    """Sales' stores and outbox in memory, the default pipeline in them: no database."""
    return FakeSalesUnitOfWork()
