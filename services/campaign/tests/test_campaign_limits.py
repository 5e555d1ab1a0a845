"""Campaign refuses deep, control-character and out-of-range input with a 4xx, storing nothing.

One app serves the whole module, with its lifespan on a SQLite file and no broker.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlmodel import select

from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.main import create_app
from rapport_campaign.segments.models import Segment
from rapport_campaign.settings import Settings
from rapport_events.outbox import OutboxMessage
from rapport_events.testing.offline import offline_client, unreachable_kafka

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration

TOKEN = "campaign-limits-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BROADCAST = {
    "name": "Spring",
    "channel": "email",
    "audience": {"customer_ids": ["c-1"]},
    "variants": [{"subject": "Hi", "body": "Spring is here"}],
}
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def deep_rule(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"attribute": "country", "op": "eq", "value": "DE"}
    for _ in range(depth):
        rule = {"not": rule}
    return rule


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    database = tmp_path_factory.mktemp("campaign-limits") / "campaign.db"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        api_token=TOKEN,
        kafka=unreachable_kafka(),
        public_url="http://campaign.test",
    )
    app = create_app(settings)
    async with offline_client(app, "http://campaign") as client:
        app.state.client = client
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return app.state.client  # type: ignore[no-any-return]


async def stored(app: FastAPI) -> tuple[int, int, int]:
    """Campaigns, segments and outbox rows in campaign's database."""
    async with app.state.runtime.sessions() as session:
        return tuple(  # type: ignore[return-value]
            [
                (await session.exec(select(func.count()).select_from(model))).one()
                for model in (Campaign, Segment, OutboxMessage)
            ]
        )


class TestSchedules:
    @pytest.mark.parametrize("moment", EDGES)
    async def test_a_schedule_at_the_calendar_edge_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, moment: str
    ) -> None:
        before = await stored(app)
        response = await client.post(
            "/campaigns", json={**BROADCAST, "schedule_at": moment}, headers=AUTH
        )
        assert response.status_code == 422, response.text
        assert "schedule_at" in response.json()["message"]
        assert await stored(app) == before

    @pytest.mark.parametrize("moment", EDGES)
    async def test_a_launch_at_the_calendar_edge_is_refused(
        self, client: httpx.AsyncClient, moment: str
    ) -> None:
        created = await client.post("/campaigns", json=BROADCAST, headers=AUTH)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        response = await client.post(
            f"/campaigns/{campaign_id}/launch", json={"at": moment}, headers=AUTH
        )
        assert response.status_code == 422, response.text
        assert "at" in response.json()["errors"][0]["loc"]
        campaign = (await client.get(f"/campaigns/{campaign_id}", headers=AUTH)).json()
        assert (campaign["status"], campaign["scheduled_at"]) == ("draft", None)


class TestBodies:
    @pytest.mark.parametrize("depth", [300, 100_000])
    async def test_a_rule_nested_past_the_limit_is_a_422_not_a_500(
        self, app: FastAPI, client: httpx.AsyncClient, depth: int
    ) -> None:
        before = await stored(app)
        body = b'{"name":"deep","rule":' + b'{"not":' * depth + b"{}" + b"}" * depth + b"}"
        response = await client.post(
            "/segments", content=body, headers={**AUTH, "content-type": "application/json"}
        )
        assert response.status_code in (400, 422), response.text
        assert await stored(app) == before

    @pytest.mark.parametrize(
        "change",
        [
            {"name": "Spring\u0000"},
            {"variants": [{"subject": "Hi\u001b", "body": "x"}]},
            {"audience": {"customer_ids": ["c-1\u0000"]}},
        ],
        ids=["name", "variant subject", "customer id"],
    )
    async def test_control_characters_are_refused(
        self, app: FastAPI, client: httpx.AsyncClient, change: dict[str, Any]
    ) -> None:
        before = await stored(app)
        response = await client.post("/campaigns", json={**BROADCAST, **change}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "control characters" in response.json()["message"]
        assert await stored(app) == before

    async def test_an_ordinary_segment_is_still_created(self, client: httpx.AsyncClient) -> None:
        body = {"name": "Germans", "rule": deep_rule(3)}
        response = await client.post("/segments", json=body, headers=AUTH)
        assert response.status_code == 201, response.text


class TestIds:
    @pytest.mark.parametrize("path_id", ["..%3F", "%2E%2E", "a%00b", "a%3Fb"])
    @pytest.mark.parametrize(
        "template", ["/customers/{}/export", "/audience/{}", "/campaigns/{}", "/segments/{}"]
    )
    async def test_malformed_ids_are_a_422(
        self, client: httpx.AsyncClient, path_id: str, template: str
    ) -> None:
        response = await client.get(template.format(path_id), headers=AUTH)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][0] == "path"
