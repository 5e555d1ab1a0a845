"""Fixtures of partner-share's tests: the app on a real database and broker, real HTTP peers;
and, for the unit layer, the partners', ledger's and notices' stores and outbox in memory."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    ProfileStub,
    WebhookReceiver,
    serve,
    settings_for,
)

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox, wait_until_ready
from rapport_events.testing.pytest_plugin import Migrations
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_partner_share.testing import FakePartnerShareUnitOfWork


@pytest.fixture
async def profile_stub() -> AsyncIterator[ProfileStub]:
    stub = ProfileStub()
    async with serve(stub.app()) as url:
        stub.url = url
        yield stub


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serve(receiver.app()) as url:
        receiver.url = f"{url}/hook"
        yield receiver


@pytest.fixture
async def app(
    database_url: str, kafka_settings: KafkaSettings, profile_stub: ProfileStub
) -> AsyncIterator[FastAPI]:
    """The service, publishing to the broker; tests hand it events directly (`apply`).

    It does not join the consumer group: leaving a group mid-join costs a second per
    test, and the tests that go through the log build an app that consumes.
    """
    app = create_app(
        settings_for(database_url, kafka_settings, profile_stub.url, consume_events=False)
    )
    async with app.router.lifespan_context(app):
        await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partner-share") as client:
        yield client


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
def uow() -> FakePartnerShareUnitOfWork:
    """The partners', ledger's and notices' stores and outbox in memory: no database."""
    return FakePartnerShareUnitOfWork()
