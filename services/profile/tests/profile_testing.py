"""Test helpers of profile: customers registered, events handed to the handlers as the
consumer would, consents, tracking calls, the outbox read back; the SQL an engine sends,
and a database seeded with aliases, erasures and rows for runs of events. Over HTTP: the
settings of the app the `app` fixture starts, its credentials, a customer created and the
rows its database holds."""

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from rapport_events.codec import Envelope, decode
from rapport_events.consumer import is_batch
from rapport_events.db import SessionFactory, create_engine, transaction
from rapport_events.migrations import upgrade
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.types import (
    LineItem,
    OrderCompleted,
)
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.consents import service as consent_service
from rapport_profile.consents.models import ConsentUpdate
from rapport_profile.customers import service as customer_service
from rapport_profile.customers.models import Customer, CustomerCreate, SegmentMembership
from rapport_profile.gdpr.models import Erasure
from rapport_profile.handlers import HANDLERS
from rapport_profile.identity import service as identity_service
from rapport_profile.identity.models import Identity
from rapport_profile.main import MIGRATIONS
from rapport_profile.settings import Settings
from rapport_profile.tracking.parsing import Message
from rapport_profile.unit_of_work import SqlProfileUnitOfWork

TOPIC = "rapport.test-profile"
VALUE_CHANGED = "rapport.customer.value.changed.v1"
SETTINGS = Settings(environment="development", kafka=KafkaSettings(topic=TOPIC))
DAY = datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday

# Ids the events are published under: customers, aliases of merged or pre-identification
# ids, an erased customer, and an erased id whose alias points at a live customer.
LIVE = [f"c-{n}" for n in range(8)]
ALIASES = {"old-1": "c-1", "old-2": "c-2", "anon-9": "c-9", "gone-3": "c-3"}
ERASED = ["c-9", "gone-3", "c-unknown-erased"]
SUBJECTS = [*LIVE, *ALIASES, "c-9", "c-unknown-erased"]

TOKEN = "profile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_KEY = "test-write-key"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
ADA = {
    "email": "Ada.Lovelace@Example.COM",
    "phone": "+14155550100",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "birth_date": "1815-12-10",
    "country": "gb",
    "city": "London",
    "acquisition_channel": "referral",
    "social_handles": {"x": "@ada"},
    "external_ids": {"crm": "A-1"},
}


def app_settings(database_url: str, kafka_settings: KafkaSettings) -> Settings:
    """The app's settings: the test token and write key, and no peer services to call."""
    return Settings(
        database_url=database_url,
        api_token=TOKEN,
        write_keys=[WRITE_KEY],
        kafka=kafka_settings,
        campaign_url="",
        support_url="",
        partner_share_url="",
        sales_url="",
    )


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/customers", json={**ADA, **overrides}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def row_counts(app: FastAPI) -> tuple[int, int]:
    """How many customers and outbox messages the service's database holds."""
    async with app.state.runtime.sessions() as session:
        customers = (await session.exec(select(func.count()).select_from(Customer))).one()
        messages = (
            await session.exec(select(func.count()).select_from(OutboxMessage).where(is_event()))
        ).one()
    return customers, messages


async def outbox(app: FastAPI) -> list[OutboxMessage]:
    async with app.state.runtime.sessions() as session:
        return list(
            (
                await session.exec(
                    select(OutboxMessage).where(is_event()).order_by(OutboxMessage.id)
                )
            ).all()
        )  # type: ignore[arg-type]


async def register(sessions: SessionFactory, email: str, **fields: Any) -> str:
    values = {"email": email, "first_name": "F", "last_name": "L", **fields}
    async with transaction(sessions) as session:
        customer = await customer_service.register_customer(
            SqlProfileUnitOfWork(session, TOPIC), CustomerCreate.model_validate(values)
        )
    return customer.id


async def deliver(sessions: SessionFactory, event: Any, event_id: str | None = None) -> None:
    """Apply an event as the consumer does: every handler of its type, in one transaction."""
    envelope = Envelope(
        data=event, source="/services/test", **({"id": event_id} if event_id else {})
    )
    async with transaction(sessions) as session:
        for handler in HANDLERS[type(event)]:
            wanted = handler.__code__.co_varnames[: handler.__code__.co_argcount]
            available = {"event": event, "envelope": envelope, "session": session}
            if is_batch(handler):  # a run of one
                available = {"events": [event], "envelopes": [envelope], "session": session}
            available["settings"] = SETTINGS
            await handler(**{name: available[name] for name in wanted})


def order(
    customer_id: str, order_id: str, revenue: str, at: datetime, cost: str | None = None
) -> OrderCompleted:
    return OrderCompleted(
        customer_id=customer_id,
        occurred_at=at,
        order_id=order_id,
        items=(LineItem(product_id="sku-1", price=Decimal(revenue)),),
        revenue=Decimal(revenue),
        cost=Decimal(cost) if cost else None,
    )


async def published(sessions: SessionFactory) -> list[Envelope]:
    async with sessions() as session:
        rows = (
            await session.exec(select(OutboxMessage).where(is_event()).order_by(OutboxMessage.id))
        ).all()  # type: ignore[arg-type]
    return [decode(m.value, [(k, v.encode()) for k, v in m.headers]) for m in rows]


async def consent(sessions: SessionFactory, customer_id: str, **body: Any) -> None:
    async with transaction(sessions) as session:
        await consent_service.set_consent(
            SqlProfileUnitOfWork(session, TOPIC), customer_id, ConsentUpdate.model_validate(body)
        )


def message(**fields: Any) -> Message:
    return Message.model_validate(fields)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def migrated(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
    return engine


async def seed(sessions: SessionFactory) -> None:
    """Aliases, erasures and rows the events find already there."""
    async with transaction(sessions) as session:
        for value, owner in ALIASES.items():
            session.add(Identity(kind=identity_service.ALIAS, value=value, customer_id=owner))
        for customer_id in ERASED:
            session.add(Erasure(customer_id=customer_id))
        session.add(
            Order(
                order_id="o-before",
                customer_id="c-1",
                subject_id="c-1",
                revenue=Decimal("10.00"),
                occurred_at=DAY - timedelta(days=3),
            )
        )
        session.add(CustomerMetrics(customer_id="c-1", orders=1, revenue=Decimal("10.00")))
        session.add(CustomerMetrics(customer_id="c-2", loyalty_points=100))
        session.add(
            SegmentMembership(
                customer_id="c-2", segment_id="s-1", segment_name="VIP", entered_at=DAY
            )
        )
