"""Test helpers of sales: settings, events handed to the handlers as the consumer would,
the outbox read back, and a stand-in of profile's read routes over real HTTP."""

import inspect
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlmodel import col, select

from rapport_events.base import Event
from rapport_events.codec import Envelope, decode
from rapport_events.db import transaction
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.types import CustomerRegistered
from rapport_sales.handlers import HANDLERS
from rapport_sales.settings import Settings

TOKEN = "sales-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def app_settings(database_url: str, kafka: KafkaSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "kafka": kafka,
        "profile_url": "http://127.0.0.1:9",
        "profile_timeout_s": 2.0,
        "consume_events": False,
    }
    values.update(overrides)
    return Settings(**values)


async def apply(app: FastAPI, *events: Event) -> None:
    """Run sales' handlers for the events, one transaction each, as the consumer would."""
    for event in events:
        envelope = Envelope(data=event, source="/services/profile", id=str(uuid.uuid4()))
        available = {
            "event": event,
            "envelope": envelope,
            "events": [event],
            "envelopes": [envelope],
            "settings": app.state.settings,
        }
        async with transaction(app.state.runtime.sessions) as session:
            for handler in HANDLERS.get(type(event), []):
                wanted = inspect.signature(handler).parameters
                await handler(**{name: {**available, "session": session}[name] for name in wanted})


async def outbox_events(app: FastAPI) -> list[Event]:
    """Every event sales wrote to its outbox, oldest first."""
    async with app.state.runtime.sessions() as session:
        rows = (
            await session.exec(
                select(OutboxMessage).where(is_event()).order_by(col(OutboxMessage.id))
            )
        ).all()
    return [
        decode(row.value, [(name, value.encode()) for name, value in row.headers]).data
        for row in rows
    ]


def person(
    customer_id: str | None = None, email: str | None = None, **fields: Any
) -> CustomerRegistered:
    """A customer.registered as profile publishes it."""
    customer_id = customer_id or str(uuid.uuid4())
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "email": email or f"{customer_id[:8]}@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        **fields,
    }
    return CustomerRegistered(**values)


class ProfileStandIn:
    """profile's timeline and forecast routes over real HTTP, answering what a test set."""

    def __init__(self) -> None:
        self.timelines: dict[str, list[dict[str, Any]]] = {}
        self.forecast: dict[str, Any] | None = None
        self.tokens: list[str] = []
        self.url = ""

    def app(self) -> FastAPI:
        stand_in = FastAPI()

        @stand_in.get("/customers/{customer_id}/timeline")
        async def timeline(customer_id: str, request: Request, limit: int = 50) -> dict[str, Any]:
            self.tokens.append(request.headers.get("authorization", ""))
            if customer_id not in self.timelines:
                raise HTTPException(404, "no customer")
            items = self.timelines[customer_id][:limit]
            return {"customer_id": customer_id, "items": items, "next_cursor": None}

        @stand_in.get("/analytics/forecast")
        async def forecast() -> dict[str, Any]:
            if self.forecast is None:
                raise HTTPException(503, "not fitted")
            return self.forecast

        return stand_in
