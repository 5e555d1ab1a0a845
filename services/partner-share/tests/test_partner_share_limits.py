"""Partner-share refuses calendar-edge, deep and control-character input, storing nothing.

One app serves the whole module, with its lifespan on a SQLite file and no broker.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import AUTH, settings_for
from sqlalchemy import func
from sqlmodel import select

from rapport_events.outbox import OutboxMessage
from rapport_events.testing.offline import offline_client, unreachable_kafka
from rapport_partner_share.main import create_app
from rapport_partner_share.partners.models import Partner

EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
PARTNER = {"name": "Acme", "industry": "retail", "slices": ["contact"], "purposes": ["offers"]}


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    database = tmp_path_factory.mktemp("partner-share-limits") / "partner_share.db"
    app = create_app(settings_for(f"sqlite:///{database}", unreachable_kafka()))
    async with offline_client(app, "http://partner-share") as client:
        app.state.client = client
        created = await client.post("/partners", json=PARTNER, headers=AUTH)
        assert created.status_code == 201, created.text
        app.state.partner_key = {"X-API-Key": created.json()["api_key"]}
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return app.state.client  # type: ignore[no-any-return]


@pytest.fixture
def key(app: FastAPI) -> dict[str, str]:
    return app.state.partner_key  # type: ignore[no-any-return]


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def stored(app: FastAPI) -> tuple[int, int]:
    """Partners and outbox rows in partner-share's database."""
    async with app.state.runtime.sessions() as session:
        counts = [
            (await session.exec(select(func.count()).select_from(model))).one()
            for model in (Partner, OutboxMessage)
        ]
    return counts[0], counts[1]


class TestDates:
    @pytest.mark.parametrize("moment", EDGES)
    async def test_changed_since_at_the_calendar_edge_is_a_422(
        self, client: httpx.AsyncClient, key: dict[str, str], moment: str
    ) -> None:
        response = await client.get(
            "/partner/v1/customers", params={"changed_since": moment}, headers=key
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["query", "changed_since"]

    @pytest.mark.parametrize("moment", EDGES)
    async def test_occurred_at_at_the_calendar_edge_is_a_422(
        self, app: FastAPI, client: httpx.AsyncClient, key: dict[str, str], moment: str
    ) -> None:
        before = await stored(app)
        body = {"ref": "r-1", "name": "Visited", "occurred_at": moment}
        response = await client.post("/partner/v1/events", json=body, headers=key)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "occurred_at"]
        assert await stored(app) == before

    @pytest.mark.parametrize("moment", EDGES)
    async def test_audit_ranges_at_the_calendar_edge_are_a_422(
        self, client: httpx.AsyncClient, moment: str
    ) -> None:
        response = await client.get("/disclosures", params={"since": moment}, headers=AUTH)
        assert response.status_code == 422, response.text


class TestBodies:
    @pytest.mark.parametrize(
        "properties",
        [
            {"deep": nested(300)},
            {"note": "a\u0000b"},
            {"k\u0000": 1},
        ],
        ids=["300 deep", "NUL value", "NUL key"],
    )
    async def test_bad_properties_are_a_422(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        key: dict[str, str],
        properties: dict[str, Any],
    ) -> None:
        before = await stored(app)
        body = {"ref": "r-1", "name": "Visited", "properties": properties}
        response = await client.post("/partner/v1/events", json=body, headers=key)
        assert response.status_code == 422, response.text
        assert await stored(app) == before

    async def test_a_partner_name_with_a_control_character_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        before = await stored(app)
        response = await client.post(
            "/partners", json={**PARTNER, "name": "Acme\u0000"}, headers=AUTH
        )
        assert response.status_code == 422, response.text
        assert await stored(app) == before


class TestOpenApi:
    def test_every_partner_api_operation_documents_its_rate_limit(self, app: FastAPI) -> None:
        paths = app.openapi()["paths"]
        operations = [
            operation
            for path, item in paths.items()
            if path.startswith("/partner/v1/")
            for operation in item.values()
        ]
        assert operations
        for operation in operations:
            assert "429" in operation["responses"], operation["operationId"]


class TestIds:
    @pytest.mark.parametrize("path_id", ["..%3F", "%2E%2E", "a%00b", "a%3Fb"])
    @pytest.mark.parametrize("template", ["/customers/{}/export", "/customers/{}", "/partners/{}"])
    async def test_malformed_ids_are_a_422(
        self, client: httpx.AsyncClient, path_id: str, template: str
    ) -> None:
        response = await client.get(template.format(path_id), headers=AUTH)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][0] == "path"
