"""Helpers for partner-share's tests: real HTTP peers, events, polling.

Profile and partner webhooks are real HTTP servers on free ports (uvicorn in
the caller's event loop), so the service's httpx calls go over the network as
in production. The fixtures that use these live in the tests' conftest.
"""

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import inspect as inspect_db
from sqlalchemy import select, table, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rapport_events.base import Event
from rapport_events.codec import Envelope, decode, encode
from rapport_events.db import transaction
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.replicas import serving
from rapport_events.types import ConsentGranted, ConsentRevoked, Slice
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.settings import Settings

TOKEN = "partner-share-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a free local port (with its lifespan); yields its base URL."""
    async with serving(app, free_port(), timeout=30, lifespan="auto") as url:
        yield url


async def everything_stored(app: FastAPI) -> str:
    """Every row of every table of `app`'s database, as one string to search."""
    async with app.state.runtime.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect_db(sync).get_table_names())
        dumped: list[str] = []
        for name in names:
            rows = await connection.execute(select(text("*")).select_from(table(name)))
            dumped.extend(repr(tuple(row)) for row in rows)
    return "\n".join(dumped)


# --- profile stand-in ------------------------------------------------------------


@dataclass
class ProfileStub:
    """A tiny real profile: GET /customers/{id} and /customers/{id}/metrics from dicts."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    # When set, every answer waits for it: a fetch stays in flight until the test says.
    hold: asyncio.Event | None = None

    def app(self) -> Starlette:
        async def customer(request: Request) -> Response:
            return await self._held(self._answer(request, self.customers))

        async def metrics(request: Request) -> Response:
            return await self._held(self._answer(request, self.metrics))

        return Starlette(
            routes=[
                Route("/customers/{customer_id}", customer),
                Route("/customers/{customer_id}/metrics", metrics),
            ]
        )

    async def _held(self, response: Response) -> Response:
        if self.hold is not None:
            await self.hold.wait()
        return response

    def _answer(self, request: Request, source: dict[str, dict[str, Any]]) -> Response:
        self.requests.append((request.url.path, request.headers.get("authorization")))
        if self.failing:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        found = source.get(request.path_params["customer_id"])
        if found is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(found)


def profile_customer(customer_id: str, **overrides: Any) -> dict[str, Any]:
    """A customer record shaped like profile's CustomerPublic."""
    record: dict[str, Any] = {
        "id": customer_id,
        "email": f"{customer_id}@example.com",
        "phone": "+14155550100",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "birth_date": "1985-12-10",
        "gender": "female",
        "income_band": "high",
        "education": "university",
        "country": "GB",
        "city": "London",
        "acquisition_channel": "referral",
        "social_handles": {"x": "@ada"},
        "external_ids": {"pos": "A-1"},
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }
    record.update(overrides)
    return record


# --- partner webhook ------------------------------------------------------------


@dataclass
class WebhookCall:
    body: bytes
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    """A partner's webhook endpoint that records what it gets; answers `statuses` in turn."""

    calls: list[WebhookCall] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.calls.append(WebhookCall(await request.body(), dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
            return JSONResponse({"received": True}, status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


# --- the service under test -----------------------------------------------------


def settings_for(
    database_url: str, kafka: KafkaSettings, profile_url: str = "http://127.0.0.1:9", **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "kafka": kafka,
        "profile_url": profile_url,
        "worker_poll_interval_s": 0.05,
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 2.0,
        "profile_timeout_s": 2.0,
        **extra,
    }
    return Settings(**values)


@dataclass
class RegisteredPartner:
    id: str
    api_key: str
    webhook_secret: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


async def register_partner(
    client: httpx.AsyncClient,
    slices: Sequence[str] = ("contact", "demographics", "purchase_summary", "segments", "loyalty"),
    **fields: Any,
) -> RegisteredPartner:
    body = {
        "name": f"Partner {uuid.uuid4().hex[:6]}",
        "industry": "travel",
        "slices": list(slices),
        "purposes": ["cross_selling", "analytics"],
        **fields,
    }
    response = await client.post("/partners", headers=AUTH, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    return RegisteredPartner(created["id"], created["api_key"], created["webhook_secret"], created)


def profile_knows(stub: ProfileStub, *ids: str) -> None:
    """Profile holds a customer record for each of these ids."""
    for customer_id in ids:
        stub.customers[customer_id] = profile_customer(customer_id)


async def read_ref(
    client: httpx.AsyncClient, partner: RegisteredPartner, ref: str, **headers: str
) -> httpx.Response:
    """The partner's GET /partner/v1/customers/{ref}."""
    return await client.get(f"/partner/v1/customers/{ref}", headers={**partner.headers, **headers})


# --- events, applied directly or through the log --------------------------------


async def apply(app: FastAPI, event: Event, event_id: str | None = None) -> None:
    """Run partner-share's handlers for one event in one transaction, as the consumer would."""
    envelope = Envelope(data=event, source="/services/test", id=event_id or str(uuid.uuid4()))
    available = {
        "event": event,
        "envelope": envelope,
        # A batch handler takes the event as a run of one, as after a retry.
        "events": [event],
        "envelopes": [envelope],
    }
    async with transaction(app.state.runtime.sessions) as session:
        for handler in HANDLERS[type(event)]:
            wanted = inspect.signature(handler).parameters
            await handler(**{name: {**available, "session": session}[name] for name in wanted})


def granted(
    customer_id: str, partner_id: str, slices: Sequence[Slice], version: int = 1
) -> ConsentGranted:
    return ConsentGranted(
        customer_id=customer_id,
        purpose="partner_sharing",
        partner_id=partner_id,
        slices=tuple(slices),
        source="web_form",
        version=version,
    )


def revoked(
    customer_id: str, partner_id: str, slices: Sequence[Slice] = (), version: int = 2
) -> ConsentRevoked:
    return ConsentRevoked(
        customer_id=customer_id,
        purpose="partner_sharing",
        partner_id=partner_id,
        slices=tuple(slices),
        source="web_form",
        version=version,
    )


async def publish(settings: KafkaSettings, *events: Event) -> None:
    """Put events on the log the way any CloudEvents producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            message = encode(Envelope(data=event, source="/services/test"))
            await producer.send_and_wait(
                settings.topic, value=message.value, key=message.key, headers=message.headers
            )
    finally:
        await producer.stop()


async def read_log(
    settings: KafkaSettings, event_type: str, count: int, timeout: float = 15.0
) -> list[Envelope]:
    """Read the topic from the start until `count` events of `event_type` were seen."""
    consumer = AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[Envelope] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = decode(record.value, record.headers)
                    if envelope.type == event_type:
                        found.append(envelope)
    finally:
        await consumer.stop()
    return found


async def consent_of(
    client: httpx.AsyncClient, customer_id: str, partner_id: str
) -> dict[str, Any] | None:
    """The consent row partner-share holds for a customer and partner (via the admin export)."""
    export = await client.get(f"/customers/{customer_id}/export", headers=AUTH)
    assert export.status_code == 200, export.text
    for consent in export.json()["records"]["consents"]:
        if consent["partner_id"] == partner_id:
            return consent  # type: ignore[no-any-return]
    return None


async def wait_filled(
    client: httpx.AsyncClient, customer_id: str, partner_id: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Wait until the profile-backed slices of a granted consent are stored; its row."""
    deadline = time.monotonic() + timeout
    while True:
        consent = await consent_of(client, customer_id, partner_id)
        if consent is not None and consent["granted"] and not consent["fill_pending"]:
            return consent
        if time.monotonic() > deadline:
            raise AssertionError(f"slices of {customer_id} not filled within {timeout}s: {consent}")
        await asyncio.sleep(0.05)


async def share(
    app: FastAPI,
    client: httpx.AsyncClient,
    customer_id: str,
    partner_id: str,
    slices: Sequence[Slice],
    version: int = 1,
) -> str:
    """Grant a consent, wait for its slices, and return the partner's ref for the customer."""
    await apply(app, granted(customer_id, partner_id, slices, version))
    return str((await wait_filled(client, customer_id, partner_id))["ref"])
