"""The Segment-compatible tracking API over HTTP, into the timeline through the real broker."""

import base64
import gzip
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import AUTH, BASIC, TOKEN, WRITE_KEY
from sqlalchemy import func
from sqlmodel import select

from rapport_events.base import utcnow
from rapport_events.codec import decode
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.testing.harness import drain_outbox, poll_until
from rapport_profile.identity.models import Identity
from rapport_profile.main import create_app
from rapport_profile.settings import Settings
from rapport_profile.tracking.models import TrackedMessage

# Every call here goes through the broker into the timeline: the app waits for its consumer.
pytestmark = pytest.mark.consumes


async def outbox_count(app: FastAPI) -> int:
    async with app.state.runtime.sessions() as session:
        return int(
            (
                await session.exec(
                    select(func.count()).select_from(OutboxMessage).where(is_event())
                )
            ).one()
        )


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
            row = (await session.exec(select(OutboxMessage).where(is_event()))).one()
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
            "rapport.customer.registered.v2",
            "rapport.customer.merged.v1",
            "rapport.order.completed.v1",
        }
        types = await poll_until(lambda: _when_all(client, ada, expected))
        assert expected <= set(types), types
        assert types.count("rapport.order.completed.v1") == 1
        metrics = (await client.get(f"/customers/{ada}/metrics", headers=AUTH)).json()
        assert (metrics["orders"], metrics["revenue"]) == (1, "349.00")
        customer = (await client.get(f"/customers/{ada}", headers=AUTH)).json()
        assert customer["acquisition_channel"] == "cpc"


async def _when_all(client: httpx.AsyncClient, customer_id: str, wanted: set[str]) -> list[str]:
    types = await timeline_types(client, customer_id)
    return types if wanted <= set(types) else []


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
            "rapport.customer.registered.v2",
            "rapport.order.completed.v1",
            "rapport.interaction.tracked.v1",
        }
        assert wanted <= set(await poll_until(lambda: _when_all(client, grace, wanted)))
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


def _bare_app(**overrides: Any) -> FastAPI:
    """The app without its lifespan: enough for what is answered before any database work."""
    values: dict[str, Any] = {
        "api_token": TOKEN,
        "write_keys": [WRITE_KEY],
        "campaign_url": "",
        "support_url": "",
        "partner_share_url": "",
        "sales_url": "",
        **overrides,
    }
    return create_app(Settings(**values))


async def _bare(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://profile")


PREFLIGHT = {
    "Origin": "https://shop.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


class TestCors:
    async def test_any_origin_may_call_the_tracking_api_by_default(self) -> None:
        async with await _bare(_bare_app()) as client:
            asked = await client.options("/v1/t", headers=PREFLIGHT)
            refused = await client.post(
                "/v1/t",
                content=b"{}",
                headers={"Origin": "https://shop.example", "Authorization": "Basic bm9wZTo="},
            )

        assert asked.status_code == 200
        assert asked.headers["access-control-allow-origin"] == "*"
        assert "POST" in asked.headers["access-control-allow-methods"]
        assert "authorization" in asked.headers["access-control-allow-headers"].lower()
        # Even a refusal is readable by the page (a 401 here), so the SDK can tell why.
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"

    async def test_only_the_tracking_api_answers_cors(self) -> None:
        async with await _bare(_bare_app()) as client:
            asked = await client.options("/customers", headers=PREFLIGHT)
            read = await client.get("/healthz", headers={"Origin": "https://shop.example"})

        assert "access-control-allow-origin" not in asked.headers
        assert "access-control-allow-origin" not in read.headers

    async def test_a_restricted_list_lets_in_only_its_origins(self) -> None:
        app = _bare_app(tracking_cors_origins=["https://shop.example"])
        async with await _bare(app) as client:
            allowed = await client.options("/v1/batch", headers=PREFLIGHT)
            other = await client.options(
                "/v1/batch", headers={**PREFLIGHT, "Origin": "https://evil.example"}
            )

        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers

    async def test_an_empty_list_turns_cors_off(self) -> None:
        async with await _bare(_bare_app(tracking_cors_origins=[])) as client:
            asked = await client.options("/v1/t", headers=PREFLIGHT)

        assert "access-control-allow-origin" not in asked.headers


class TestSegmentErrorBodies:
    async def test_every_refusal_on_v1_has_code_message_and_says_not_to_retry(self) -> None:
        wrong = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
        async with await _bare(_bare_app()) as client:
            replies = {
                "unknown key": await client.post("/v1/track", json={}, headers=wrong),
                "unknown path": await client.post("/v1/nothing", json={}, headers=BASIC),
                "wrong method": await client.get("/v1/track"),
                "over the cap": await client.post(
                    "/v1/batch", content=b"x" * (2 * 1024 * 1024), headers=BASIC
                ),
            }

        statuses = {name: reply.status_code for name, reply in replies.items()}
        assert statuses == {
            "unknown key": 401,
            "unknown path": 404,
            "wrong method": 405,
            "over the cap": 413,
        }
        for name, reply in replies.items():
            body = reply.json()
            assert body["code"] and body["message"], name
            assert body["retryable"] is False, name
        assert replies["unknown key"].json()["code"] == "unauthorized"

    async def test_other_routes_keep_their_own_error_body(self) -> None:
        async with await _bare(_bare_app()) as client:
            reply = await client.get("/customers/x")

        assert reply.status_code == 401
        assert "retryable" not in reply.json()


class TestHowAnalyticsJsSends:
    async def test_short_paths_with_the_write_key_in_a_text_plain_body(
        self, client: httpx.AsyncClient
    ) -> None:
        plain = {"content-type": "text/plain;charset=UTF-8"}
        who = {"writeKey": WRITE_KEY, "anonymousId": "a-js", "userId": "u-js"}
        calls = {
            "/v1/i": {**who, "traits": {"email": "hedy@example.com", "firstName": "Hedy"}},
            "/v1/t": {**who, "event": "Order Completed", "properties": {"revenue": 10}},
            "/v1/p": {**who, "name": "Home"},
            "/v1/s": {**who, "name": "Home screen"},
            "/v1/g": {**who, "groupId": "acme", "traits": {"name": "Acme"}},
            "/v1/a": {**who, "previousId": "u-js-old"},
            "/v1/b": {"writeKey": WRITE_KEY, "batch": [{**who, "type": "track", "event": "B"}]},
        }
        replies = {
            path: await client.post(path, content=json.dumps(body), headers=plain)
            for path, body in calls.items()
        }
        keyless = await client.post("/v1/t", content=json.dumps({"userId": "u", "event": "E"}))

        assert {path: r.status_code for path, r in replies.items()} == dict.fromkeys(calls, 200)
        assert keyless.status_code == 401
        hedy = await customer_by_email(client, "hedy@example.com")
        assert hedy is not None
        wanted = {"rapport.order.completed.v1", "rapport.interaction.tracked.v1"}
        assert wanted <= set(await poll_until(lambda: _when_all(client, hedy, wanted)))
        customer = (await client.get(f"/customers/{hedy}", headers=AUTH)).json()
        assert [a["id"] for a in customer["accounts"]] == ["acme"]


class TestTraits:
    async def test_context_traits_make_the_customer_and_custom_ones_are_kept(
        self, client: httpx.AsyncClient
    ) -> None:
        # RudderStack's identify: traits only in context.traits.
        first = {
            "userId": "rs-1",
            "context": {"traits": {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"}},
        }
        later = {
            "userId": "rs-1",
            "context": {"traits": {"plan": "team"}},
            "traits": {"seats": 4, "plan": "enterprise", "email": "ada@example.com"},
        }
        cleared = {"userId": "rs-1", "traits": {"seats": None, "email": "ada@example.com"}}

        for call in (first, later):
            assert (await client.post("/v1/identify", json=call, headers=BASIC)).status_code == 200
        ada = await customer_by_email(client, "ada@example.com")
        assert ada is not None
        shown = (await client.get(f"/customers/{ada}", headers=AUTH)).json()
        assert (shown["first_name"], shown["traits"]) == ("Ada", {"plan": "enterprise", "seats": 4})
        assert (await client.post("/v1/identify", json=cleared, headers=BASIC)).status_code == 200
        shown = (await client.get(f"/customers/{ada}", headers=AUTH)).json()
        assert shown["traits"] == {"plan": "enterprise"}
        # The log carries them (campaign's `trait` rules read them from there).
        wanted = {"rapport.customer.updated.v1"}
        assert await poll_until(lambda: _when_all(client, ada, wanted))
        items = (await client.get(f"/customers/{ada}/timeline", headers=AUTH)).json()["items"]
        published = [
            i["data"]["changes"]["traits"]
            for i in items
            if i["type"] == "rapport.customer.updated.v1" and "traits" in i["data"]["changes"]
        ]
        assert {"plan": "pro"} in published  # right after customer.registered
        assert await poll_until(
            lambda: _published_traits(client, ada, {"plan": "enterprise"}), timeout=15
        )

    async def test_past_the_limits_the_call_is_400_and_changes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        many = {f"t{n}": n for n in range(101)}
        long_name = {"x" * 101: 1}
        for traits in (many, long_name):
            reply = await client.post(
                "/v1/identify",
                json={"userId": "u-big", "traits": {"email": "big@example.com", **traits}},
                headers=BASIC,
            )
            assert reply.status_code == 400, reply.text
            assert reply.json()["code"] == "bad_request"
            assert reply.json()["retryable"] is False
        assert await customer_by_email(client, "big@example.com") is None
        assert await outbox_count(app) == 0


class TestGroupsAndCampaigns:
    async def test_accounts_show_on_the_customer_and_leave_with_an_erasure(
        self, client: httpx.AsyncClient
    ) -> None:
        who = {"userId": "u-g", "anonymousId": "a-g"}
        batch = {
            "batch": [
                {**who, "type": "group", "groupId": "acme", "traits": {"name": "Acme", "plan": 1}},
                {**who, "type": "group", "groupId": "acme", "traits": {"name": "Acme"}},
                {"userId": "u-h", "type": "group", "groupId": "acme", "traits": {"seats": 3}},
                {**who, "type": "identify", "traits": {"email": "gina@example.com"}},
                {
                    **who,
                    "type": "page",
                    "name": "Pricing",
                    "context": {
                        "campaign": {"name": "spring", "source": "news", "medium": "email"}
                    },
                },
            ]
        }
        assert (await client.post("/v1/batch", json=batch, headers=BASIC)).status_code == 200
        again = {**who, "groupId": "acme", "traits": {"plan": 2, "industry": "retail"}}
        assert (await client.post("/v1/group", json=again, headers=BASIC)).status_code == 200
        missing = await client.post("/v1/group", json=who, headers=BASIC)
        gina = await customer_by_email(client, "gina@example.com")
        assert gina is not None

        customer = (await client.get(f"/customers/{gina}", headers=AUTH)).json()
        exported = (await client.get(f"/customers/{gina}/export?scope=local", headers=AUTH)).json()
        # The group calls go on the log too, for sales to link the contact to the account.
        wanted = {"rapport.interaction.tracked.v1", "rapport.account.joined.v1"}
        await poll_until(lambda: _when_all(client, gina, wanted))
        items = (await client.get(f"/customers/{gina}/timeline", headers=AUTH)).json()["items"]
        erased = await client.delete(f"/customers/{gina}", headers=AUTH)
        after = (await client.get(f"/customers/{gina}/export?scope=local", headers=AUTH)).json()

        assert missing.status_code == 400 and "groupId" in missing.json()["message"]
        [account] = customer["accounts"]
        assert (account["id"], account["name"]) == ("acme", "Acme")
        assert account["traits"] == {"name": "Acme", "plan": 2, "industry": "retail", "seats": 3}
        assert [m["account_id"] for m in exported["records"]["account_memberships"]] == ["acme"]
        page = next(i["data"] for i in items if i["data"].get("name") == "Pricing")
        assert page["utm"] == {
            "utm_campaign": "spring",
            "utm_source": "news",
            "utm_medium": "email",
        }
        assert erased.status_code == 200, erased.text
        assert after["records"]["account_memberships"] == []
        assert after["records"]["customers"] == []


async def _published_traits(
    client: httpx.AsyncClient, customer_id: str, traits: dict[str, Any]
) -> bool:
    items = (await client.get(f"/customers/{customer_id}/timeline", headers=AUTH)).json()["items"]
    return any(
        i["type"] == "rapport.customer.updated.v1" and i["data"]["changes"].get("traits") == traits
        for i in items
    )
