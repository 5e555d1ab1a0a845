"""Support refuses control-character, out-of-range and malformed input with a 4xx, storing nothing.

One app serves the whole module, with its lifespan on a SQLite file and no broker.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlmodel import select

from rapport_events.outbox import OutboxMessage
from rapport_events.testing.offline import offline_client, unreachable_kafka
from rapport_support.main import create_app
from rapport_support.mentions.models import SupportMention
from rapport_support.settings import Settings
from rapport_support.tickets.models import SupportTicket

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration

TOKEN = "support-limits-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICKET = {"customer_id": "c-1", "subject": "Broken kettle", "description": "It leaks."}
MENTION = {"platform": "x", "handle": "@ada", "text": "Love the kettle"}


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    database = tmp_path_factory.mktemp("support-limits") / "support.db"
    settings = Settings(
        database_url=f"sqlite:///{database}", api_token=TOKEN, kafka=unreachable_kafka()
    )
    app = create_app(settings)
    async with offline_client(app, "http://support") as client:
        app.state.client = client
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return app.state.client  # type: ignore[no-any-return]


async def stored(app: FastAPI) -> tuple[int, int, int]:
    """Tickets, mentions and outbox rows in support's database."""
    async with app.state.runtime.sessions() as session:
        counts = [
            (await session.exec(select(func.count()).select_from(model))).one()
            for model in (SupportTicket, SupportMention, OutboxMessage)
        ]
    return counts[0], counts[1], counts[2]


class TestBodies:
    @pytest.mark.parametrize(
        "path, body",
        [
            ("/tickets", {**TICKET, "subject": "Broken\u0000"}),
            ("/tickets", {**TICKET, "description": "line\u001b[2J"}),
            ("/social/mentions", {**MENTION, "text": "hi\u0000"}),
            ("/social/mentions", {**MENTION, "time": "0001-01-01T00:00:00+01:00"}),
            ("/social/mentions", {**MENTION, "time": "9999-12-31T23:59:59-01:00"}),
        ],
        ids=["NUL subject", "escape in description", "NUL text", "year 1", "year 9999"],
    )
    async def test_bad_input_is_a_422_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, path: str, body: dict[str, Any]
    ) -> None:
        before = await stored(app)
        response = await client.post(path, json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert await stored(app) == before

    async def test_a_ticket_keeps_its_line_breaks(self, client: httpx.AsyncClient) -> None:
        body = {**TICKET, "description": "It leaks.\r\n\tEvery day."}
        response = await client.post("/tickets", json=body, headers=AUTH)
        assert response.status_code == 201, response.text


class TestIds:
    @pytest.mark.parametrize("path_id", ["..%3F", "%2E%2E", "a%00b", "a%3Fb"])
    @pytest.mark.parametrize(
        "template", ["/customers/{}/export", "/customers/{}/support-context", "/tickets/{}"]
    )
    async def test_malformed_ids_are_a_422(
        self, client: httpx.AsyncClient, path_id: str, template: str
    ) -> None:
        response = await client.get(template.format(path_id), headers=AUTH)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][0] == "path"
