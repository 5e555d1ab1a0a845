"""The Segment-compatible tracking API over HTTP, into the timeline through the real broker."""

import asyncio
import base64
import gzip
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from segment.analytics import Client
from sqlalchemy import func
from sqlmodel import select

from rapport_events.base import utcnow
from rapport_events.codec import decode
from rapport_events.outbox import OutboxMessage
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import wait_until_ready
from rapport_profile.main import create_app
from rapport_profile.models import Identity, TrackedMessage
from rapport_profile.settings import Settings

TOKEN = "profile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_KEY = "test-write-key"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def drain_outbox(app: FastAPI, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay = app.state.runtime.relay
        if relay is not None and (await relay.backlog())[0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the outbox was not drained within {timeout}s")


def settings(database_url: str, kafka_settings: KafkaSettings) -> Settings:
    return Settings(
        database_url=database_url,
        api_token=TOKEN,
        write_keys=[WRITE_KEY],
        kafka=kafka_settings,
        campaign_url="",
        support_url="",
        partner_share_url="",
    )


@pytest.fixture
async def app(database_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[FastAPI]:
    app = create_app(settings(database_url, kafka_settings))
    async with app.router.lifespan_context(app):
        await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
        yield client


async def outbox_count(app: FastAPI) -> int:
    async with app.state.runtime.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(OutboxMessage))).one())


async def timeline_types(client: httpx.AsyncClient, customer_id: str) -> list[str]:
    response = await client.get(f"/customers/{customer_id}/timeline", headers=AUTH)
    if response.status_code != 200:
        return []
    return [item["type"] for item in response.json()["items"]]


async def customer_by_email(client: httpx.AsyncClient, email: str) -> str | None:
    found = (await client.get("/customers", params={"email": email}, headers=AUTH)).json()
    return found["items"][0]["id"] if found["items"] else None


class TestWriteKey:
    async def test_a_missing_or_unknown_write_key_is_401_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        call = {"userId": "u-1", "event": "Clicked"}
        wrong = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}

        missing = await client.post("/v1/track", json=call)
        unknown = await client.post("/v1/track", json=call, headers=wrong)

        assert (missing.status_code, unknown.status_code) == (401, 401)
        assert missing.json()["error"] == "unauthorized"
        assert await outbox_count(app) == 0


class TestBadCalls:
    async def test_malformed_or_oversized_calls_are_400_and_store_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        big = "x" * (33 * 1024)
        cases: list[tuple[str, bytes]] = [
            ("/v1/track", b"{not json"),
            ("/v1/track", json.dumps({"event": "Clicked"}).encode()),
            ("/v1/track", json.dumps({"userId": "u"}).encode()),
            (
                "/v1/track",
                json.dumps({"userId": "u", "event": "E", "properties": {"x": big}}).encode(),
            ),
            ("/v1/batch", json.dumps({"batch": "nope"}).encode()),
            (
                "/v1/batch",
                json.dumps(
                    {
                        "batch": [
                            {
                                "type": "track",
                                "userId": "u",
                                "event": "E",
                                "properties": {"x": "y" * 30_000},
                            }
                        ]
                        * 18
                    }
                ).encode(),
            ),
            (
                "/v1/batch",
                json.dumps(
                    {
                        "batch": [
                            {
                                "type": "track",
                                "userId": "u",
                                "event": "Order Completed",
                                "properties": {"revenue": "lots"},
                            }
                        ]
                    }
                ).encode(),
            ),
        ]
        for path, body in cases:
            response = await client.post(
                path, content=body, headers={**BASIC, "content-type": "application/json"}
            )

            assert response.status_code == 400, (path, body[:80], response.text)
            assert response.json()["code"] == "bad_request"
        assert await outbox_count(app) == 0


def _track(event: str, properties: str, extra: str = "") -> tuple[str, bytes]:
    """A raw track call, so numbers JSON allows but Python cannot hold (1e400) go through."""
    body = f'{{"userId": "u-9", "event": "{event}", "properties": {properties}{extra}}}'
    return "/v1/track", body.encode()


OUT_OF_RANGE = {
    "revenue past what decimal can quantize": _track("Order Completed", '{"revenue": 1e30}'),
    "revenue past the money column": _track("Order Completed", '{"revenue": 1000000000000}'),
    "price past the money column": _track(
        "Order Completed", '{"products": [{"product_id": "p", "price": 1e30}]}'
    ),
    "quantity of infinity": _track(
        "Order Completed", '{"products": [{"product_id": "p", "price": 1, "quantity": 1e400}]}'
    ),
    "items adding up past the money column": _track(
        "Product Added", '{"products": [{"product_id": "p", "price": 999999999, "quantity": 9999}]}'
    ),
    "nps score of infinity": _track("Survey Completed", '{"nps_score": 1e400}'),
    "points of infinity": _track("Loyalty Points Earned", '{"points": 1e400}'),
    "points past the points column": _track("Loyalty Points Earned", '{"points": 10000000000}'),
    "balance of infinity": _track("Loyalty Points Earned", '{"points": 5, "balance": 1e400}'),
    "timestamp near the end of time": _track(
        "Clicked", "{}", ', "timestamp": "9999-12-31T23:59:59Z", "sentAt": "2000-01-01T00:00:00Z"'
    ),
    "sentAt near the end of time": _track(
        "Clicked", "{}", ', "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"'
    ),
    "a batch sentAt far from the message timestamp": (
        "/v1/batch",
        b'{"sentAt": "0001-01-02T00:00:00Z", "batch": [{"type": "page", "userId": "u-9",'
        b' "timestamp": "9999-12-30T00:00:00Z"}]}',
    ),
}


async def stored_rows(app: FastAPI) -> int:
    """Outbox messages, identities and applied messageIds the service holds."""
    async with app.state.runtime.sessions() as session:
        counts = [
            (await session.exec(select(func.count()).select_from(model))).one()
            for model in (OutboxMessage, Identity, TrackedMessage)
        ]
    return sum(counts)


class TestOutOfRangeValues:
    @pytest.mark.parametrize("case", list(OUT_OF_RANGE))
    async def test_each_is_400_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, case: str
    ) -> None:
        path, body = OUT_OF_RANGE[case]

        response = await client.post(
            path, content=body, headers={**BASIC, "content-type": "application/json"}
        )

        assert response.status_code == 400, response.text
        assert response.json()["code"] == "bad_request"
        assert await stored_rows(app) == 0

    async def test_a_corrected_time_never_passes_arrival(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        call = {
            "userId": "u-9",
            "event": "Clicked",
            "timestamp": "2199-12-31T00:00:00Z",
            "sentAt": "1970-01-02T00:00:00Z",
        }

        response = await client.post("/v1/track", json=call, headers=BASIC)
        await drain_outbox(app)

        assert response.status_code == 200, response.text
        async with app.state.runtime.sessions() as session:
            row = (await session.exec(select(OutboxMessage))).one()
        event = decode(row.value, [(k, v.encode()) for k, v in row.headers])
        assert abs((event.data.occurred_at - utcnow()).total_seconds()) < 60


class TestLateCallsAboutAnErasedVisitor:
    @pytest.mark.parametrize(
        ("call", "erased_id"),
        [
            ({"userId": "u-7", "event": "Clicked"}, "user:u-7"),
            ({"anonymousId": "a-7", "event": "Clicked"}, "anon:a-7"),
        ],
    )
    async def test_leave_no_identity_and_no_event(
        self, app: FastAPI, client: httpx.AsyncClient, call: dict[str, str], erased_id: str
    ) -> None:
        first = await client.post("/v1/track", json=call, headers=BASIC)
        erased = await client.delete(f"/customers/{erased_id}", headers=AUTH)
        left_by_erasure = await stored_rows(app)

        late = await client.post("/v1/track", json=call, headers=BASIC)

        assert first.status_code == 200, first.text
        assert erased.status_code == 200, erased.text
        assert late.status_code == 200, late.text
        assert left_by_erasure == await stored_rows(app)
        async with app.state.runtime.sessions() as session:
            identities = (await session.exec(select(Identity))).all()
        assert identities == []


class TestBatchIntoTheTimeline:
    async def test_identify_track_and_page_land_on_the_timeline_and_metrics(
        self, client: httpx.AsyncClient
    ) -> None:
        batch = {
            "batch": [
                {
                    "type": "page",
                    "anonymousId": "a-1",
                    "name": "Espresso machines",
                    "context": {
                        "page": {"url": "https://shop.example/espresso"},
                        "campaign": {"source": "google", "medium": "cpc"},
                    },
                },
                {
                    "type": "identify",
                    "anonymousId": "a-1",
                    "userId": "u-1",
                    "traits": {
                        "email": "ada@example.com",
                        "firstName": "Ada",
                        "lastName": "Lovelace",
                    },
                },
                {
                    "type": "track",
                    "userId": "u-1",
                    "event": "Order Completed",
                    "messageId": "m-3",
                    "properties": {
                        "order_id": "o-1",
                        "revenue": 349,
                        "products": [{"product_id": "sku-x2", "name": "Barista X2", "price": 349}],
                    },
                },
            ]
        }
        body = gzip.compress(json.dumps(batch).encode())
        headers = {**BASIC, "content-type": "application/json", "content-encoding": "gzip"}

        response = await client.post("/v1/batch", content=body, headers=headers)
        again = await client.post("/v1/batch", content=body, headers=headers)

        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
        assert again.status_code == 200
        ada = await customer_by_email(client, "ada@example.com")
        assert ada is not None
        expected = {
            "rapport.interaction.tracked.v1",
            "rapport.customer.registered.v1",
            "rapport.customer.merged.v1",
            "rapport.order.completed.v1",
        }
        types = await until(lambda: _when_all(client, ada, expected))
        assert expected <= set(types), types
        assert types.count("rapport.order.completed.v1") == 1
        metrics = (await client.get(f"/customers/{ada}/metrics", headers=AUTH)).json()
        assert (metrics["orders"], metrics["revenue"]) == (1, "349.00")
        customer = (await client.get(f"/customers/{ada}", headers=AUTH)).json()
        assert customer["acquisition_channel"] == "cpc"


async def _when_all(client: httpx.AsyncClient, customer_id: str, wanted: set[str]) -> list[str]:
    types = await timeline_types(client, customer_id)
    return types if wanted <= set(types) else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(database_url: str, kafka_settings: KafkaSettings) -> Iterator[str]:
    """Profile on a real HTTP server (uvicorn in a thread), as an SDK needs."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings(database_url, kafka_settings)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


class TestSegmentSdk:
    async def test_the_python_library_pointed_at_profile_lands_on_the_timeline(
        self, served: str
    ) -> None:
        errors: list[Exception] = []
        sdk = Client(
            WRITE_KEY, host=served, sync_mode=True, on_error=lambda e, _b: errors.append(e)
        )
        await asyncio.to_thread(
            sdk.identify,
            "u-42",
            {"email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper"},
        )
        await asyncio.to_thread(
            sdk.track,
            "u-42",
            "Product Added",
            {"cart_id": "c-1", "product_id": "sku-1", "price": 20},
        )
        await asyncio.to_thread(sdk.page, "u-42", "Docs", "Install", {"url": "https://x.example/i"})
        batched = Client(
            WRITE_KEY, host=served, upload_size=10, on_error=lambda e, _b: errors.append(e)
        )
        for n in range(3):
            batched.track("u-42", "Video Played", {"n": n})
        await asyncio.to_thread(batched.flush)
        await asyncio.to_thread(batched.join)

        async with httpx.AsyncClient(base_url=served) as client:
            grace = await until(lambda: customer_by_email(client, "grace@example.com"))
            assert grace is not None
            wanted = {
                "rapport.customer.registered.v1",
                "rapport.cart.updated.v1",
                "rapport.interaction.tracked.v1",
            }
            types = await until(
                lambda: _counted(client, grace, wanted, "rapport.interaction.tracked.v1", 4)
            )
        assert errors == []
        assert wanted <= set(types), types
        assert types.count("rapport.interaction.tracked.v1") == 4  # one page, three plays


async def _counted(
    client: httpx.AsyncClient, customer_id: str, wanted: set[str], kind: str, count: int
) -> list[str]:
    types = await timeline_types(client, customer_id)
    return types if wanted <= set(types) and types.count(kind) >= count else []


class TestSingleCallsIntoTheTimeline:
    async def test_identify_then_track_then_page_each_land_on_the_timeline(
        self, client: httpx.AsyncClient
    ) -> None:
        who = {"userId": "u-3", "anonymousId": "a-3"}
        identified = await client.post(
            "/v1/identify",
            json={**who, "traits": {"email": "grace@example.com", "name": "Grace Hopper"}},
            headers=BASIC,
        )
        tracked = await client.post(
            "/v1/track",
            json={
                **who,
                "event": "Order Completed",
                "properties": {"order_id": "o-3", "revenue": 42.5},
            },
            headers=BASIC,
        )
        paged = await client.post(
            "/v1/page",
            json={**who, "name": "Compilers", "properties": {"url": "https://shop.example/c"}},
            headers=BASIC,
        )

        assert [r.status_code for r in (identified, tracked, paged)] == [200, 200, 200]
        grace = await customer_by_email(client, "grace@example.com")
        assert grace is not None
        wanted = {
            "rapport.customer.registered.v1",
            "rapport.order.completed.v1",
            "rapport.interaction.tracked.v1",
        }
        assert wanted <= set(await until(lambda: _when_all(client, grace, wanted)))
        items = (await client.get(f"/customers/{grace}/timeline", headers=AUTH)).json()["items"]
        by_type = {item["type"]: item["data"] for item in items}
        assert by_type["rapport.order.completed.v1"]["revenue"] == "42.50"
        page = by_type["rapport.interaction.tracked.v1"]
        assert (page["kind"], page["name"], page["url"]) == (
            "page",
            "Compilers",
            "https://shop.example/c",
        )
        customer = (await client.get(f"/customers/{grace}", headers=AUTH)).json()
        assert (customer["first_name"], customer["last_name"]) == ("Grace", "Hopper")
