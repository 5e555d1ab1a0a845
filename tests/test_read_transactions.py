"""On SQLite, GET routes run in read transactions: they never take or wait for the write lock.

Every GET route of each service is called (with ids that exist and ids that do not) while
an SQLAlchemy listener records the transactions the requests begin. A write transaction
begins `BEGIN IMMEDIATE`; a read one a plain `BEGIN`. Only the GET routes that record
something (a click, a disclosure) may ask for a write, and they say so in their signature.
"""

import contextvars
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.routing import BaseRoute

from rapport_campaign.main import create_app as create_campaign
from rapport_campaign.settings import Settings as CampaignSettings
from rapport_events.deps import get_write_session
from rapport_events.settings import KafkaSettings
from rapport_partner_share.main import create_app as create_partner_share
from rapport_partner_share.settings import Settings as PartnerShareSettings
from rapport_profile.main import create_app as create_profile
from rapport_profile.settings import Settings as ProfileSettings
from rapport_sales.main import create_app as create_sales
from rapport_sales.settings import Settings as SalesSettings
from rapport_support.main import create_app as create_support
from rapport_support.settings import Settings as SupportSettings

TOKEN = "read-transactions-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNKNOWN_ID = str(uuid.UUID(int=7))
PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# The GET routes that write, each with its reason; nothing else may.
WRITING_GETS = {
    "campaign": {"/t/{token}", "/o/{token}", "/u/{token}"},  # click, open, unsubscribe
    "partner-share": {"/partner/v1/customers/{ref}", "/partner/v1/customers"},  # disclosures
}
WRITE_SESSIONS = {get_write_session}

serving: contextvars.ContextVar[str | None] = contextvars.ContextVar("serving", default=None)


def _app(name: str, database_url: str, kafka: KafkaSettings) -> FastAPI:
    common: dict[str, Any] = {"database_url": database_url, "api_token": TOKEN, "kafka": kafka}
    if name == "profile":
        return create_profile(
            ProfileSettings(
                **common, campaign_url="", support_url="", partner_share_url="", sales_url=""
            )
        )
    if name == "campaign":
        return create_campaign(
            CampaignSettings(**common, public_url="http://campaign.test", worker_interval_s=3600)
        )
    if name == "support":
        return create_support(SupportSettings(**common))
    if name == "sales":
        return create_sales(SalesSettings(**common, profile_url="http://127.0.0.1:9"))
    return create_partner_share(PartnerShareSettings(**common, profile_url="http://127.0.0.1:9"))


async def _seed(name: str, client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    """A record the routes can find (its id under each path parameter naming it), and headers."""
    if name == "profile":
        body = {"email": "reader@example.com", "first_name": "R", "last_name": "O"}
        return {"customer_id": await _create(client, "/customers", body)}, AUTH
    if name == "campaign":
        body = {"name": "b", "rule": {"metric": "orders", "op": "gte", "value": 1}}
        return {"segment_id": await _create(client, "/segments", body)}, AUTH
    if name == "support":
        body = {"customer_id": "c-1", "subject": "Hi"}
        return {"ticket_id": await _create(client, "/tickets", body), "customer_id": "c-1"}, AUTH
    if name == "sales":
        account = await _create(client, "/accounts", {"name": "Acme"})
        body = {"account_id": account, "name": "Deal", "amount": "10"}
        opportunity = await _create(client, "/opportunities", body)
        return {
            "account_id": account,
            "opportunity_id": opportunity,
            "pipeline_id": "default",
        }, AUTH
    body = {"name": "P", "industry": "travel", "slices": ["contact"], "purposes": ["ads"]}
    reply = await client.post("/partners", json=body, headers=AUTH)
    assert reply.status_code == 201, reply.text
    return {"partner_id": reply.json()["id"]}, {**AUTH, "X-API-Key": reply.json()["api_key"]}


async def _create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    reply = await client.post(path, json=body, headers=AUTH)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def _fill(path: str, ids: dict[str, str]) -> str:
    """The path with each parameter replaced by its known id, or by an unknown one."""
    return PATH_PARAM.sub(lambda match: ids.get(match[1], UNKNOWN_ID), path)


def _asks_for(dependant: Dependant, calls: set[Callable[..., Any]]) -> bool:
    return dependant.call in calls or any(_asks_for(d, calls) for d in dependant.dependencies)


def _get_routes(routes: Iterable[BaseRoute]) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute) and "GET" in route.methods:
            found.append(route)
        # FastAPI keeps an included router whole, under its original routes.
        if (included := getattr(route, "original_router", None)) is not None:
            found += _get_routes(included.routes)
    return found


@pytest.fixture
def begins() -> Any:
    """(route, statement) of every transaction begun while a request of the test is served."""
    seen: list[tuple[str, str]] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        route = serving.get()
        if route is not None and statement.upper().startswith("BEGIN"):
            seen.append((route, statement.upper()))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.fixture(params=["profile", "campaign", "support", "partner-share", "sales"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[str, FastAPI, httpx.AsyncClient]]:
    name: str = request.param
    app = _app(name, f"sqlite:///{tmp_path / 'service.db'}", kafka_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield name, app, client


class TestGetRoutesOnSqlite:
    async def test_never_begin_a_write_transaction_unless_they_record_something(
        self, service: tuple[str, FastAPI, httpx.AsyncClient], begins: list[tuple[str, str]]
    ) -> None:
        name, app, client = service
        known, headers = await _seed(name, client)
        routes = _get_routes(app.routes)
        assert len(routes) > 10
        writing = {r.path for r in routes if _asks_for(r.dependant, WRITE_SESSIONS)}
        assert writing == WRITING_GETS.get(name, set())

        for route in routes:
            if route.path in writing:
                continue
            for ids in (known, {}):
                path = _fill(route.path, ids)
                token = serving.set(route.path)
                try:
                    await client.get(path, headers=headers)
                finally:
                    serving.reset(token)

        assert begins, "no request reached the database"
        assert [(route, s) for route, s in begins if s != "BEGIN"] == []
