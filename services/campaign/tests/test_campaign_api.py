"""Campaign over HTTP with its real lifespan: a real broker, database, SMTP server, webhook
receiver and a stand-in for profile's consent route."""

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from pydantic import ValidationError

from rapport_campaign.main import create_app
from rapport_campaign.settings import DEVELOPMENT_TOKEN, Settings
from rapport_events.codec import decode
from rapport_events.settings import KafkaSettings
from rapport_events.testing.examples import value_after
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    CustomerErased,
    CustomerRegistered,
    LineItem,
    OrderCompleted,
)
from rapport_profile.main import create_app as create_profile_app
from rapport_profile.settings import Settings as ProfileSettings

TOKEN = "campaign-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRACKED = re.compile(r"http://campaign\.test/t/[\w.-]+")

Publish = Callable[..., Awaitable[None]]
Eventually = Callable[..., Awaitable[Any]]


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def registered(customer_id: str, **fields: Any) -> CustomerRegistered:
    values: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "first_name": "Ann",
        "last_name": "Tester",
        "country": "FR",
        "acquisition_channel": "search",
        "phone": "+33600000001",
    }
    values.update(fields)
    return CustomerRegistered(customer_id=customer_id, **values)


def granted(customer_id: str, channel: str = "email") -> ConsentGranted:
    return ConsentGranted(
        customer_id=customer_id,
        purpose="marketing",
        channel=channel,  # type: ignore[arg-type]
        source="web_form",
        version=1,
    )


def order(customer_id: str, order_id: str, revenue: str = "120", **fields: Any) -> OrderCompleted:
    return OrderCompleted(
        customer_id=customer_id,
        order_id=order_id,
        items=(LineItem(product_id="p-1", name="Boots", category="shoes", price=Decimal(revenue)),),
        revenue=Decimal(revenue),
        **fields,
    )


def cart(customer_id: str, action: str = "product_added") -> CartUpdated:
    return CartUpdated(
        customer_id=customer_id,
        cart_id="cart-1",
        action=action,  # type: ignore[arg-type]
        items=(LineItem(product_id="p-9", name="Rain boots", price=Decimal("90")),),
        value=Decimal("90"),
    )


async def ready(client: httpx.AsyncClient, eventually: Eventually) -> None:
    response = await eventually(lambda: client.get("/readyz"), lambda r: r.status_code == 200)
    assert response.status_code == 200, response.text


async def known(client: httpx.AsyncClient, eventually: Eventually, *ids: str) -> None:
    """Wait until campaign has consumed the registration of every id."""
    for customer_id in ids:
        response = await eventually(
            lambda cid=customer_id: client.get(f"/audience/{cid}", headers=AUTH),
            lambda r: r.status_code == 200,
        )
        assert response.status_code == 200, response.text


async def report_when(
    client: httpx.AsyncClient,
    eventually: Eventually,
    path: str,
    check: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    response = await eventually(
        lambda: client.get(path, headers=AUTH),
        lambda r: r.status_code == 200 and check(r.json()),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert check(body), body
    return body


def email_template(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "email",
        "link": "https://shop.example/spring",
        "variants": [
            {
                "name": "A",
                "subject": "{{ customer.first_name }}, spring is here",
                "body": "Shop now: {{ cta_url }}",
            }
        ],
    }
    values.update(fields)
    return values


class TestSettings:
    def test_names_given_in_code_win(self) -> None:
        settings = Settings(database_url="sqlite:///x.db", api_token="from-code")
        assert (settings.database_url, settings.api_token) == ("sqlite:///x.db", "from-code")

    def test_the_development_token_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError):
            Settings(environment="production", api_token=DEVELOPMENT_TOKEN)

    def test_the_development_signing_secret_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError, match="SIGNING_SECRET"):
            Settings(environment="production", api_token="real-token")


class TestHealthAndAuth:
    async def test_readyz_turns_ready(
        self, client: httpx.AsyncClient, eventually: Eventually
    ) -> None:
        await ready(client, eventually)
        assert (await client.get("/readyz")).json()["checks"] == {
            "database": "ok",
            "broker": "ok",
            "tasks": "ok",
        }

    async def test_routes_need_the_bearer_token_but_links_in_messages_do_not(
        self, client: httpx.AsyncClient
    ) -> None:
        for path in ("/segments", "/campaigns", "/analytics/channels", "/customers/x/export"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthorized"
        assert (
            await client.get("/segments", headers={"Authorization": "Bearer no"})
        ).status_code == 401
        for path in ("/t/forged", "/o/forged", "/u/forged"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["message"] == "this link is not valid"

    async def test_the_openapi_document_describes_the_routes(
        self, client: httpx.AsyncClient
    ) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert paths["/segments"]["post"]["description"].startswith("Create a segment")
        assert {"/campaigns/{campaign_id}/report", "/t/{token}", "/analytics/channels"} <= set(
            paths
        )


class TestBadInput:
    async def test_bad_rules_and_templates_are_clear_4xx_and_store_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        cases = [
            ("/segments", {"name": "x", "rule": {"colour": "red"}}, 422, "exactly one of the keys"),
            ("/segments", {"name": "x", "rule": {"segment": "seg_nope"}}, 422, "unknown segments"),
            (
                "/segments",
                {"name": "x", "rule": {"metric": "orders", "op": "gte", "value": "lots"}},
                422,
                "compares with a number",
            ),
            ("/segments/preview", {"rule": {"all": []}}, 422, "at least 1 item"),
            (
                "/campaigns",
                email_template(
                    audience={"customer_ids": ["a"]},
                    variants=[{"subject": "x", "body": "{{ customer.__init__.__globals__ }}"}],
                ),
                422,
                "unsafe",
            ),
            (
                "/campaigns",
                email_template(
                    audience={"customer_ids": ["a"]},
                    variants=[{"subject": "Hi {{ first_name }}", "body": "{{ cta_url }}"}],
                ),
                422,
                "'first_name' is undefined",
            ),
            (
                "/campaigns",
                email_template(
                    audience={"customer_ids": ["a"]},
                    variants=[{"subject": "Hi", "body": "{{ customer.frist_name }}"}],
                ),
                422,
                "has no attribute 'frist_name'",
            ),
            ("/campaigns", email_template(audience={"segment_id": "seg_nope"}), 422, "no segment"),
            (
                "/campaigns",
                email_template(audience={"segment_id": "s", "customer_ids": ["a"]}),
                422,
                "exactly one of segment_id or customer_ids",
            ),
            (
                "/journeys",
                email_template(trigger="abandoned_cart"),
                422,
                "needs delay_minutes",
            ),
        ]
        for path, body, status, message in cases:
            response = await client.post(path, json=body, headers=AUTH)
            assert response.status_code == status, (path, response.text)
            assert message in response.json()["message"], response.text

        assert (await client.get("/segments", headers=AUTH)).json() == []
        assert (await client.get("/campaigns", headers=AUTH)).json() == []
        assert (await client.get("/journeys", headers=AUTH)).json() == []

    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            pytest.param(
                "/segments",
                {
                    "name": "x",
                    "rule": {"attribute": "days_since_registration", "op": "gt", "value": 1e6},
                },
                "at most 36500 days",
                id="days-too-many",
            ),
            pytest.param(
                "/segments/preview",
                {"rule": {"metric": "recency_days", "op": "between", "value": [1, 1_000_000]}},
                "at most 36500 days",
                id="days-between-too-many",
            ),
            pytest.param(
                "/segments",
                {"name": "x", "rule": {"attribute": "age", "op": "gte", "value": 3000}},
                "at most 150 years",
                id="age-too-old",
            ),
            pytest.param(
                "/segments/preview",
                {"rule": {"metric": "revenue", "op": "gt", "value": 1e15}},
                "a number between",
                id="number-too-large",
            ),
            pytest.param(
                "/segments/preview",
                {
                    "rule": {
                        "event": "order.completed",
                        "where": [{"property": "price", "op": "in", "value": [1, -1e13]}],
                    }
                },
                "a number between",
                id="property-number-too-small",
            ),
            pytest.param(
                "/campaigns",
                email_template(audience={"customer_ids": ["a", "x" * 65]}),
                "at most 64 characters",
                id="customer-id-too-long",
            ),
            pytest.param(
                "/campaigns",
                email_template(audience={"customer_ids": [""]}),
                "at least 1 character",
                id="customer-id-empty",
            ),
            pytest.param(
                "/campaigns",
                email_template(
                    audience={"customer_ids": ["a"]}, link="https://shop.example/" + "p" * 2040
                ),
                "link is at most 2048 characters",
                id="link-too-long",
            ),
        ],
    )
    async def test_values_beyond_what_can_be_stored_or_counted_are_422(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], message: str
    ) -> None:
        response = await client.post(path, json=body, headers=AUTH)

        assert response.status_code == 422, response.text
        assert message in response.json()["message"], response.text
        assert (await client.get("/segments", headers=AUTH)).json() == []
        assert (await client.get("/campaigns", headers=AUTH)).json() == []

    async def test_values_at_the_bounds_are_accepted(self, client: httpx.AsyncClient) -> None:
        rule = {
            "all": [
                {"attribute": "days_since_registration", "op": "lte", "value": 36_500},
                {"attribute": "age", "op": "between", "value": [0, 150]},
                {"metric": "revenue", "op": "lt", "value": 999_999_999_999.5},
                {"metric": "orders", "op": "gt", "value": -999_999_999_999},
            ]
        }
        preview = await client.post("/segments/preview", json={"rule": rule}, headers=AUTH)
        created = await client.post(
            "/campaigns",
            json=email_template(
                audience={"customer_ids": ["c" * 64]}, link="https://shop.example/" + "p" * 2000
            ),
            headers=AUTH,
        )

        assert preview.status_code == 200, preview.text
        assert preview.json()["count"] == 0
        assert created.status_code == 201, created.text
        assert created.json()["customer_ids"] == ["c" * 64]

    async def test_unknown_ids_are_404_and_a_second_launch_is_409(
        self, client: httpx.AsyncClient
    ) -> None:
        for path in ("/segments/seg_x", "/segments/seg_x/members", "/campaigns/c/report"):
            assert (await client.get(path, headers=AUTH)).status_code == 404, path
        created = await client.post(
            "/campaigns", json=email_template(audience={"customer_ids": ["a"]}), headers=AUTH
        )
        campaign_id = created.json()["id"]
        assert (
            await client.post(f"/campaigns/{campaign_id}/launch", headers=AUTH)
        ).status_code == 202

        again = await client.post(f"/campaigns/{campaign_id}/launch", headers=AUTH)

        assert again.status_code == 409
        assert again.json()["error"] == "conflict"

    async def test_a_refreshed_segment_shows_its_refresh_time_with_its_offset(
        self, client: httpx.AsyncClient, eventually: Eventually
    ) -> None:
        rule = {"metric": "orders", "op": "gte", "value": 1}
        created = await client.post(
            "/segments", json={"name": "buyers", "rule": rule}, headers=AUTH
        )
        segment_url = f"/segments/{created.json()['id']}"

        async def read() -> dict[str, Any]:
            return (await client.get(segment_url, headers=AUTH)).json()  # type: ignore[no-any-return]

        segment = await eventually(read, lambda body: body["refreshed_at"] is not None)

        assert segment["refreshed_at"] is not None, segment
        assert segment["refreshed_at"].endswith(("Z", "+00:00")), segment["refreshed_at"]

    async def test_the_customer_export_is_never_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody/export", headers=AUTH)
        assert response.status_code == 200
        body = response.json()
        assert (body["service"], body["customer_id"]) == ("campaign", "nobody")
        assert body["records"]["campaign_messages"] == []
        assert all(rows == [] for rows in body["records"].values())


class TestCampaignToASegment:
    async def test_emails_respect_consent_and_the_report_closes_the_loop(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        smtp: Any,
    ) -> None:
        ann, bob, cid = new_id(), new_id(), new_id()
        await ready(client, eventually)
        await publish(registered(ann), granted(ann), registered(bob), granted(bob), registered(cid))
        await known(client, eventually, ann, bob, cid)
        created = await client.post(
            "/segments",
            json={"name": "France", "rule": {"attribute": "country", "op": "eq", "value": "FR"}},
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        segment = created.json()
        assert segment["member_count"] == 3
        campaign = await client.post(
            "/campaigns",
            json=email_template(audience={"segment_id": segment["id"]}, offer={"prefix": "SPRING"}),
            headers=AUTH,
        )
        assert campaign.status_code == 201, campaign.text
        campaign_id = campaign.json()["id"]

        launched = await client.post(f"/campaigns/{campaign_id}/launch", headers=AUTH)
        assert launched.status_code == 202, launched.text
        path = f"/campaigns/{campaign_id}/report"
        report = await report_when(client, eventually, path, lambda r: r["status"] == "sent")

        assert (report["targeted"], report["sent"], report["delivered"]) == (3, 2, 2)
        assert report["suppressed"] == 1
        assert len(smtp.to(f"{ann}@example.com")) == 1
        assert len(smtp.to(f"{bob}@example.com")) == 1
        assert smtp.to(f"{cid}@example.com") == []
        [mail] = smtp.to(f"{ann}@example.com")
        assert mail["Subject"] == "Ann, spring is here"
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()

        link = TRACKED.search(text)
        assert link is not None
        redirect = await client.get(link.group(0))
        assert redirect.status_code == 302
        location = redirect.headers["location"]
        assert location.startswith("https://shop.example/spring?")
        assert "utm_source=rapport" in location and "utm_medium=email" in location
        pixel = re.search(r'src="(http://campaign\.test/o/[^"]+)"', html)
        assert pixel is not None
        opened = await client.get(pixel.group(1))
        assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")

        bought = order(ann, "o-1", revenue="120")
        await publish(bought, value_after(bought))  # the value profile publishes after it
        report = await report_when(client, eventually, path, lambda r: r["converted"] == 1)
        assert (report["opened"], report["clicked"], report["revenue"]) == (1, 1, "120.00")
        assert report["variants"][0]["variant"] == "A"
        assert report["variants"][0]["converted"] == 1

        # Buyers count from the value event, which may be applied after the order's run.
        analytics = await report_when(
            client, eventually, "/analytics/channels", lambda r: _search_channel(r)["buyers"] > 0
        )
        [row] = [r for r in analytics["campaigns"] if r["campaign_id"] == campaign_id]
        assert (row["sent"], row["converted"], row["revenue"]) == (2, 1, "120.00")
        search = _search_channel(analytics)
        assert (search["customers"], search["buyers"]) == (3, 1)


def _search_channel(analytics: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in analytics["acquisition_channels"] if r["acquisition_channel"] == "search"]
    return rows[0] if rows else {"customers": 0, "buyers": 0}


class TestScheduledLaunch:
    async def test_a_campaign_launched_for_later_sends_at_its_time(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        smtp: Any,
    ) -> None:
        ann = new_id()
        await ready(client, eventually)
        await publish(registered(ann), granted(ann))
        await known(client, eventually, ann)
        created = await client.post(
            "/campaigns", json=email_template(audience={"customer_ids": [ann]}), headers=AUTH
        )
        campaign_id = created.json()["id"]
        at = datetime.now(UTC) + timedelta(seconds=3)

        launched = await client.post(
            f"/campaigns/{campaign_id}/launch", json={"at": at.isoformat()}, headers=AUTH
        )

        assert launched.status_code == 202, launched.text
        assert launched.json()["status"] == "scheduled"
        assert datetime.fromisoformat(launched.json()["scheduled_at"]) == at
        assert smtp.to(f"{ann}@example.com") == []
        report = await report_when(
            client, eventually, f"/campaigns/{campaign_id}/report", lambda r: r["sent"] == 1
        )
        assert datetime.now(UTC) >= at
        assert len(smtp.to(f"{ann}@example.com")) == 1
        assert report["status"] in ("sending", "sent")
        campaign = (await client.get(f"/campaigns/{campaign_id}", headers=AUTH)).json()
        assert datetime.fromisoformat(campaign["launched_at"]) >= at


class TestUnsubscribe:
    async def test_the_link_revokes_in_profile_and_suppresses_at_once(
        self,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        smtp: Any,
        profile_stub: Any,
    ) -> None:
        ann = new_id()
        await ready(client, eventually)
        await publish(registered(ann), granted(ann))
        await known(client, eventually, ann)
        body = email_template(audience={"customer_ids": [ann]})
        first = (await client.post("/campaigns", json=body, headers=AUTH)).json()["id"]
        await client.post(f"/campaigns/{first}/launch", headers=AUTH)
        await report_when(
            client, eventually, f"/campaigns/{first}/report", lambda r: r["sent"] == 1
        )
        [mail] = smtp.to(f"{ann}@example.com")
        unsubscribe_url = mail["List-Unsubscribe"].strip("<>")

        page = await client.get(unsubscribe_url)

        assert page.status_code == 200
        assert "no longer receive marketing messages by email" in page.text
        revoked = await eventually(
            lambda: _async(profile_stub.requests), lambda requests: len(requests) == 1
        )
        [request] = revoked
        assert (request["method"], request["path"]) == ("PUT", f"/customers/{ann}/consents")
        assert request["json"] == {
            "purpose": "marketing",
            "channel": "email",
            "granted": False,
            "source": "unsubscribe_link",
        }
        assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
        second = (await client.post("/campaigns", json=body, headers=AUTH)).json()["id"]
        await client.post(f"/campaigns/{second}/launch", headers=AUTH)
        report = await report_when(
            client, eventually, f"/campaigns/{second}/report", lambda r: r["status"] == "sent"
        )
        assert (report["suppressed"], report["sent"]) == (1, 0)
        assert len(smtp.to(f"{ann}@example.com")) == 1


async def _async(value: Any) -> Any:
    return value


class TestWebhookChannel:
    async def test_an_sms_is_signed_and_retried_until_the_provider_takes_it(
        self,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        webhook: Any,
    ) -> None:
        ann = new_id()
        webhook.statuses[:] = [503]
        await ready(client, eventually)
        await publish(registered(ann), granted(ann, "sms"))
        await known(client, eventually, ann)
        campaign = await client.post(
            "/campaigns",
            json={
                "name": "Flash",
                "channel": "sms",
                "audience": {"customer_ids": [ann]},
                "variants": [{"body": "Flash sale, {{ customer.first_name }}!"}],
            },
            headers=AUTH,
        )
        campaign_id = campaign.json()["id"]

        await client.post(f"/campaigns/{campaign_id}/launch", headers=AUTH)
        report = await report_when(
            client, eventually, f"/campaigns/{campaign_id}/report", lambda r: r["sent"] == 1
        )

        assert report["delivered"] == 1
        assert len(webhook.requests) == 2
        request = webhook.requests[-1]
        assert request["path"] == "/sms"
        assert request["json"]["to"] == "+33600000001"
        assert request["json"]["text"].startswith("Flash sale, Ann!")
        assert "Unsubscribe: http://campaign.test/u/" in request["json"]["text"]
        assert request["headers"]["x-rapport-signature"].startswith("sha256=")


class TestLiveSegment:
    async def test_an_order_on_the_log_enters_the_segment_and_is_announced(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        kafka_settings: KafkaSettings,
    ) -> None:
        ann = new_id()
        await ready(client, eventually)
        await publish(registered(ann))
        await known(client, eventually, ann)
        created = await client.post(
            "/segments",
            json={
                "name": "Shoe buyers",
                "rule": {
                    "event": "order.completed",
                    "within_days": 30,
                    "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                },
            },
            headers=AUTH,
        )
        segment_id = created.json()["id"]
        assert created.json()["member_count"] == 0

        await publish(order(ann, "o-1"))
        members = await eventually(
            lambda: client.get(f"/segments/{segment_id}/members", headers=AUTH),
            lambda r: r.json()["count"] == 1,
        )

        assert [m["customer_id"] for m in members.json()["members"]] == [ann]
        entered = await eventually(
            lambda: _log_events(kafka_settings, "rapport.segment.entered.v1"),
            lambda found: len(found) == 1,
        )
        assert [(e.customer_id, e.segment_id) for e in entered] == [(ann, segment_id)]


async def _log_events(settings: KafkaSettings, event_type: str) -> list[Any]:
    """Every event of one type on the test's topic, read from the start."""
    consumer = AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()
    found = []
    for records in batches.values():
        for record in records:
            headers = dict(record.headers or ())
            if headers.get("ce_type") == event_type.encode():
                found.append(decode(record.value, record.headers).data)
    return found


class TestAbandonedCart:
    async def test_one_reminder_per_abandoned_cart(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
        smtp: Any,
    ) -> None:
        ann = new_id()
        await ready(client, eventually)
        journey = await client.post(
            "/journeys",
            json=email_template(
                name="Cart reminder",
                trigger="abandoned_cart",
                delay_minutes=0.02,
                variants=[
                    {
                        "subject": "You left something behind",
                        "body": "{% for item in cart['items'] %}{{ item.name }}{% endfor %}",
                    }
                ],
            ),
            headers=AUTH,
        )
        assert journey.status_code == 201, journey.text
        journey_id = journey.json()["id"]

        await publish(registered(ann), granted(ann), cart(ann), cart(ann, "checkout_started"))
        report = await report_when(
            client, eventually, f"/journeys/{journey_id}/report", lambda r: r["sent"] == 1
        )
        await publish(cart(ann, "cart_viewed"))
        await eventually(
            lambda: client.get(f"/customers/{ann}/export", headers=AUTH),
            lambda r: len(r.json()["records"]["campaign_activity"]) == 3,
        )
        await app.state.worker.tick_once()
        await app.state.worker.send_once()

        [mail] = smtp.to(f"{ann}@example.com")
        assert mail["Subject"] == "You left something behind"
        assert "Rain boots" in mail.get_body(("plain",)).get_content()
        report = (await client.get(f"/journeys/{journey_id}/report", headers=AUTH)).json()
        assert (report["targeted"], report["sent"]) == (1, 1)

    async def test_a_timer_survives_a_restart(
        self,
        database_url: str,
        campaign_settings: Callable[..., Settings],
        drain: Callable[[FastAPI], Awaitable[None]],
        publish: Publish,
        eventually: Eventually,
        smtp: Any,
    ) -> None:
        ann = new_id()
        settings = campaign_settings(database_url)
        first = create_app(settings)
        async with first.router.lifespan_context(first), _client(first) as client:
            # This instance consumes and arms the timer but never gets to fire it.
            await first.state.worker.stop()
            await ready(client, eventually)
            journey = await client.post(
                "/journeys",
                json=email_template(name="Cart", trigger="abandoned_cart", delay_minutes=0.02),
                headers=AUTH,
            )
            journey_id = journey.json()["id"]
            await publish(registered(ann), granted(ann), cart(ann))
            armed = await eventually(
                lambda: client.get(f"/customers/{ann}/export", headers=AUTH),
                lambda r: len(r.json()["records"]["campaign_journey_states"]) == 1,
            )
            assert armed.json()["records"]["campaign_journey_states"][0]["due_at"] is not None
            await drain(first)
        assert smtp.to(f"{ann}@example.com") == []

        second = create_app(settings)
        async with second.router.lifespan_context(second), _client(second) as client:
            report = await report_when(
                client, eventually, f"/journeys/{journey_id}/report", lambda r: r["sent"] == 1
            )
            await drain(second)

        assert report["targeted"] == 1
        assert len(smtp.to(f"{ann}@example.com")) == 1


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://campaign.test"
    )


class TestErasure:
    async def test_an_erasure_on_the_log_leaves_only_a_tombstone(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        publish: Publish,
        eventually: Eventually,
    ) -> None:
        ann = new_id()
        await ready(client, eventually)
        await publish(registered(ann), granted(ann), order(ann, "o-1"))
        await eventually(
            lambda: client.get(f"/customers/{ann}/export", headers=AUTH),
            lambda r: len(r.json()["records"]["campaign_activity"]) == 1,
        )

        await publish(CustomerErased(customer_id=ann), order(ann, "o-2"))
        export = await eventually(
            lambda: client.get(f"/customers/{ann}/export", headers=AUTH),
            lambda r: r.json()["records"]["campaign_tombstones"] != [],
        )

        records = export.json()["records"]
        assert {name for name, rows in records.items() if rows} == {"campaign_tombstones"}
        assert (await client.get(f"/audience/{ann}", headers=AUTH)).status_code == 404


class TestWithProfile:
    async def test_a_customer_registered_in_profile_shows_up(
        self,
        client: httpx.AsyncClient,
        database_factory: DatabaseFactory,
        kafka_settings: KafkaSettings,
        eventually: Eventually,
    ) -> None:
        profile = create_profile_app(
            ProfileSettings(
                database_url=await database_factory("profile"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        )
        async with (
            profile.router.lifespan_context(profile),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=profile), base_url="http://profile"
            ) as profile_client,
        ):
            created = await profile_client.post(
                "/customers",
                headers=AUTH,
                json={
                    "email": "Alan@Example.com",
                    "first_name": "Alan",
                    "last_name": "Turing",
                    "country": "gb",
                    "acquisition_channel": "event",
                },
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]

            response = await eventually(
                lambda: client.get(f"/audience/{customer_id}", headers=AUTH),
                lambda r: r.status_code == 200,
            )
            relay = profile.state.runtime.relay
            await eventually(
                lambda: relay.backlog(), lambda backlog: relay is None or backlog[0] == 0
            )

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["email"] == "alan@example.com"
        assert body["country"] == "GB"
        assert body["acquisition_channel"] == "event"
