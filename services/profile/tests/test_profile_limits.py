"""Profile refuses oversized, deep, control-character and out-of-range input, storing nothing.

One app serves the whole module, with its lifespan on a SQLite file and no broker:
every refusal happens before anything is written, so none of this needs the log.
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlmodel import select

from rapport_events.outbox import OutboxMessage
from rapport_events.testing.offline import offline_client, unreachable_kafka
from rapport_profile.customers.models import Customer
from rapport_profile.main import create_app
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY, Settings
from rapport_profile.timeline.models import TimelineEntry

TOKEN = "profile-limits-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_KEY = httpx.BasicAuth(DEVELOPMENT_WRITE_KEY, "")
ADA = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}


def nested(depth: int) -> dict[str, Any]:
    """`{"a": {"a": ... {}}}`, `depth` objects deep, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def deep_json(depth: int) -> bytes:
    """The JSON text of `nested(depth)` (json.dumps itself cannot write it that deep)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


class Peers:
    """Stands in for campaign, support and partner-share; records every call."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(200, json={"records": {}})


@pytest.fixture(scope="module")
def module_peers() -> Peers:
    return Peers()


@pytest.fixture
def peers(module_peers: Peers) -> Peers:
    module_peers.urls.clear()
    return module_peers


# Not conftest's app: one for the whole module, on a SQLite file with no broker and the
# peers faked, since every refusal here comes before any write.
@pytest.fixture(scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, module_peers: Peers
) -> AsyncIterator[FastAPI]:
    database = tmp_path_factory.mktemp("profile-limits") / "profile.db"
    settings = Settings(
        database_url=f"sqlite:///{database}", api_token=TOKEN, kafka=unreachable_kafka()
    )
    app = create_app(settings)
    async with offline_client(app, "http://profile") as client:
        app.state.client = client
        app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(module_peers))
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    return app.state.client  # type: ignore[no-any-return]


async def stored(app: FastAPI) -> tuple[int, int, int]:
    """Customers, timeline entries and outbox rows in profile's database."""
    async with app.state.runtime.sessions() as session:
        counts = []
        for model in (Customer, TimelineEntry, OutboxMessage):
            counts.append((await session.exec(select(func.count()).select_from(model))).one())
        return counts[0], counts[1], counts[2]


@pytest.fixture
async def before(app: FastAPI) -> tuple[int, int, int]:
    """What the database held when the test began."""
    return await stored(app)


def refused_field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["message"])


class TestCustomerBodies:
    async def test_a_10_mb_customer_is_refused_and_nothing_is_stored(
        self, app: FastAPI, client: httpx.AsyncClient, before: tuple[int, int, int]
    ) -> None:
        body = {**ADA, "social_handles": {f"p{i}": "h" * 1000 for i in range(10_000)}}
        response = await client.post("/customers", json=body, headers=AUTH)
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"
        assert await stored(app) == before

    @pytest.mark.parametrize(
        "field, value",
        [
            ("social_handles", {f"p{i}": "h" for i in range(10_000)}),
            ("external_ids", {"crm": "x" * 100_000}),
            ("external_ids", {"k" * 100_000: "x"}),
            ("social_handles", {"x": "@ada\u0000"}),
        ],
        ids=["10k entries", "100k-char value", "100k-char key", "NUL in a value"],
    )
    async def test_oversized_or_unprintable_maps_are_refused(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        before: tuple[int, int, int],
        field: str,
        value: dict[str, str],
    ) -> None:
        response = await client.post("/customers", json={**ADA, field: value}, headers=AUTH)
        assert field in refused_field(response)
        assert await stored(app) == before

    @pytest.mark.parametrize("name", ["Ada\u0000", "Ada\u0007", "Ada\ud800"])
    async def test_control_characters_in_names_are_refused(
        self, app: FastAPI, client: httpx.AsyncClient, before: tuple[int, int, int], name: str
    ) -> None:
        body = json.dumps({**ADA, "first_name": name}).encode()
        response = await client.post(
            "/customers", content=body, headers={**AUTH, "content-type": "application/json"}
        )
        assert "control characters" in refused_field(response)
        assert await stored(app) == before

    async def test_a_birth_date_at_the_calendar_edge_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/customers", json={**ADA, "birth_date": "0001-01-01"}, headers=AUTH
        )
        assert "birth_date" in refused_field(response)

    async def test_a_body_nested_past_the_parser_is_a_4xx(
        self, app: FastAPI, client: httpx.AsyncClient, before: tuple[int, int, int]
    ) -> None:
        response = await client.post(
            "/customers",
            content=deep_json(100_000),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert await stored(app) == before

    async def test_a_normal_customer_still_registers(self, client: httpx.AsyncClient) -> None:
        body = {
            **ADA,
            "email": "ada.normal@example.com",
            "social_handles": {"x": "@ada"},
            "external_ids": {"crm": "A-1"},
        }
        response = await client.post("/customers", json=body, headers=AUTH)
        assert response.status_code == 201, response.text


class TestTrackingCalls:
    @pytest.mark.parametrize("depth", [300, 10_000, 100_000])
    async def test_deep_properties_are_a_400_not_a_500(
        self, app: FastAPI, client: httpx.AsyncClient, before: tuple[int, int, int], depth: int
    ) -> None:
        head = b'{"userId":"u1","event":"Deep","properties":'
        response = await client.post(
            "/v1/batch" if depth > 300 else "/v1/track",
            content=(
                b'{"batch":['
                + head[:-1]
                + b',"type":"track","properties":'
                + deep_json(depth)
                + b"}]}"
            )
            if depth > 300
            else head + deep_json(depth) + b"}",
            headers={"content-type": "application/json"},
            auth=WRITE_KEY,
        )
        assert response.status_code == 400, response.text
        assert await stored(app) == before

    async def test_properties_nested_past_the_limit_name_the_field(
        self, client: httpx.AsyncClient
    ) -> None:
        call = {"userId": "u1", "event": "Deep", "properties": nested(20)}
        response = await client.post("/v1/track", json=call, auth=WRITE_KEY)
        assert response.status_code == 400, response.text
        assert "properties" in response.json()["message"]

    @pytest.mark.parametrize(
        "call",
        [
            {"userId": "u1", "event": "Bad\u0000name"},
            {"userId": "u1", "event": "Ok", "properties": {"note": "a\u0000b"}},
            {"userId": "u1", "event": "Ok", "properties": {"k\u0000": 1}},
            {"userId": "u\u0000", "event": "Ok"},
            {"userId": "u1", "event": "Ok", "traits": {"deep": [["\u001b"]]}},
        ],
        ids=["event name", "property value", "property key", "userId", "nested trait"],
    )
    async def test_control_characters_are_refused(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        before: tuple[int, int, int],
        call: dict[str, Any],
    ) -> None:
        response = await client.post("/v1/track", json=call, auth=WRITE_KEY)
        assert response.status_code == 400, response.text
        assert "control characters" in response.json()["message"]
        assert await stored(app) == before

    async def test_a_batch_over_the_body_cap_is_a_documented_413(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/v1/batch",
            content=b" " * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
            auth=WRITE_KEY,
        )
        assert response.status_code == 413, response.text
        assert "413" in app.openapi()["paths"]["/v1/batch"]["post"]["responses"]

    async def test_a_plain_track_call_is_accepted(self, client: httpx.AsyncClient) -> None:
        call = {"userId": "u1", "event": "Viewed", "properties": {"a": {"b": [1, "two\n"]}}}
        response = await client.post("/v1/track", json=call, auth=WRITE_KEY)
        assert response.status_code == 200, response.text


class TestPeerCalls:
    @pytest.mark.parametrize("path_id", ["..%3F", "%2E%2E", "a%00b", "a%0Ab", "a%3Fb", "x" * 65])
    @pytest.mark.parametrize("suffix", ["/export", "", "/erasure"])
    async def test_malformed_ids_are_refused_before_any_peer_is_called(
        self, client: httpx.AsyncClient, peers: Peers, path_id: str, suffix: str
    ) -> None:
        method = "DELETE" if suffix == "" else "GET"
        response = await client.request(method, f"/customers/{path_id}{suffix}", headers=AUTH)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["path", "customer_id"]
        assert peers.urls == []

    async def test_peer_urls_hold_the_id_as_one_escaped_segment(
        self, client: httpx.AsyncClient, peers: Peers
    ) -> None:
        response = await client.get("/customers/user:ada+1@example.com/export", headers=AUTH)
        assert response.status_code == 200, response.text
        assert sorted(peers.urls) == sorted(
            f"{base}/customers/user%3Aada%2B1%40example.com/export"
            for base in (
                "http://127.0.0.1:8002",
                "http://127.0.0.1:8003",
                "http://127.0.0.1:8004",
                "http://127.0.0.1:8005",
            )
        )
