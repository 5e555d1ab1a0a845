"""Fixtures of campaign's tests: migrated databases, a real SMTP server, real HTTP receivers,
the app on a real broker, and small helpers handed out as fixtures; and, for the unit layer,
the use cases' stores and outbox in memory."""

import email
import email.policy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import JSONResponse

from rapport_campaign.handlers import HANDLERS
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE, create_app
from rapport_campaign.settings import Settings
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_events.base import Event
from rapport_events.codec import Envelope, decode, encode
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.fakes import FakeProducer
from rapport_events.testing.harness import (
    consumes_events,
    drain_outbox,
    poll_until,
    wait_until_ready,
)
from rapport_events.testing.pytest_plugin import Migrations
from rapport_events.testing.replicas import serving

TOKEN = "campaign-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK_SECRET = "campaign-test-webhook-secret"


# --- databases --------------------------------------------------------------------------------


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions on a migrated campaign database (SQLite or PostgreSQL)."""
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
        kafka=KafkaSettings(topic="rapport.campaign-unit"),
        public_url="http://campaign.test",
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


# --- a real SMTP server ----------------------------------------------------------------------


@dataclass
class MailSink:
    """Collects every message the SMTP server accepts."""

    received: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(message)  # type: ignore[arg-type]
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [
            m for m, rcpt in zip(self.received, self.recipients, strict=True) if address in rcpt
        ]


@pytest.fixture
def smtp() -> Any:
    """An SMTP server (aiosmtpd) on a free port, for the test."""
    sink = MailSink(port=free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


# --- real HTTP receivers ---------------------------------------------------------------------


@dataclass
class Receiver:
    """A small HTTP server that records requests and answers with queued status codes."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": body,
                "json": json.loads(body) if body else None,
            }
        )
        status = self.statuses.pop(0) if self.statuses else 200
        await JSONResponse({"status": "ok" if status < 400 else "error"}, status_code=status)(
            scope, receive, send
        )


async def _serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    async with serving(receiver, receiver.port):
        yield receiver


@pytest.fixture
async def webhook() -> AsyncIterator[Receiver]:
    """A channel provider's webhook endpoint."""
    async for receiver in _serve(Receiver(port=free_port())):
        yield receiver


@pytest.fixture
async def profile_stub() -> AsyncIterator[Receiver]:
    """Stands in for profile's consent route: records the revocations campaign sends."""
    async for receiver in _serve(Receiver(port=free_port())):
        yield receiver


# --- the app on a real broker ------------------------------------------------------------------


def app_settings(
    database_url: str,
    kafka_settings: KafkaSettings,
    smtp: MailSink,
    webhook: Receiver,
    profile: Receiver,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "kafka": kafka_settings,
        "public_url": "http://campaign.test",
        "profile_url": profile.url,
        "profile_token": TOKEN,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "sms_webhook_url": f"{webhook.url}/sms",
        "push_webhook_url": f"{webhook.url}/push",
        "social_webhook_url": f"{webhook.url}/social",
        "webhook_secret": WEBHOOK_SECRET,
        "worker_interval_s": 0.1,
        "send_retry_base_s": 0.1,
        "segment_refresh_interval_s": 3600,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def app(
    database_url: str,
    kafka_settings: KafkaSettings,
    smtp: MailSink,
    webhook: Receiver,
    profile_stub: Receiver,
    request: pytest.FixtureRequest,
) -> AsyncIterator[FastAPI]:
    """The campaign app with its lifespan, on a real broker, SMTP server and webhooks."""
    app = create_app(app_settings(database_url, kafka_settings, smtp, webhook, profile_stub))
    async with app.router.lifespan_context(app):
        if consumes_events(request):
            await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
def campaign_settings(
    kafka_settings: KafkaSettings, smtp: MailSink, webhook: Receiver, profile_stub: Receiver
) -> Callable[..., Settings]:
    """Builds app settings for a database, for tests that start the app themselves."""

    def make(database_url: str, **overrides: Any) -> Settings:
        return app_settings(database_url, kafka_settings, smtp, webhook, profile_stub, **overrides)

    return make


@pytest.fixture
def drain() -> Callable[[FastAPI], Awaitable[None]]:
    return drain_outbox


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://campaign.test") as client:
        yield client


@pytest.fixture
async def publish(kafka_settings: KafkaSettings) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Put events on the log the way any CloudEvents producer would (one producer per test)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await producer.start()

    async def send(*events: Event) -> None:
        for event in events:
            message = encode(Envelope(data=event, source="/services/profile"))
            await producer.send_and_wait(
                kafka_settings.topic, value=message.value, key=message.key, headers=message.headers
            )

    yield send
    await producer.stop()


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    return poll_until


@pytest.fixture
def deliver(
    sessions: SessionFactory, settings: Settings
) -> Callable[..., Awaitable[list[Envelope]]]:
    """Apply events through the library's consumer runner (inbox and handler map), no broker."""
    runner = ConsumerRunner(
        service="campaign",
        settings=KafkaSettings(),
        session_factory=sessions,
        handlers=HANDLERS,
        producer=FakeProducer(),  # type: ignore[arg-type]
        dependencies={"settings": settings},
    )

    async def run(*events: Event) -> list[Envelope]:
        envelopes = []
        for event in events:
            envelope = Envelope(data=event, source="/services/profile")
            await runner.apply(envelope, HANDLERS[type(event)])
            envelopes.append(envelope)
        return envelopes

    return run


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
def uow() -> FakeCampaignUnitOfWork:
    """The broadcasts' and journeys' stores and outbox in memory: no database."""
    return FakeCampaignUnitOfWork()
