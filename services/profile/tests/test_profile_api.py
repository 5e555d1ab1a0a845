"""Profile over HTTP, with its real lifespan, a real broker and a real database."""

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import select

from rapport_events.base import Event
from rapport_events.codec import Envelope, decode, encode
from rapport_events.kafka import create_producer
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import (
    consumes_events,
    drain_outbox,
    poll_until,
    until_status,
    wait_until_ready,
)
from rapport_events.types import SegmentEntered, SegmentExited
from rapport_profile.customers.models import Customer
from rapport_profile.main import create_app
from rapport_profile.settings import DEVELOPMENT_TOKEN, Settings

TOKEN = "profile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
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


@pytest.fixture
async def app(
    database_url: str, kafka_settings: KafkaSettings, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    app = create_app(Settings(database_url=database_url, api_token=TOKEN, kafka=kafka_settings))
    async with app.router.lifespan_context(app):
        if consumes_events(request):
            await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
        yield client


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


class TestSettings:
    def test_names_given_in_code_win(self) -> None:
        settings = Settings(database_url="sqlite:///x.db", api_token="from-code")
        assert (settings.database_url, settings.api_token) == ("sqlite:///x.db", "from-code")

    def test_the_development_token_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError):
            Settings(environment="production", api_token=DEVELOPMENT_TOKEN)


class TestHealth:
    async def test_healthz_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_turns_ready(self, client: httpx.AsyncClient) -> None:
        response = await until_status(lambda: client.get("/readyz"), timeout=10.0)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "tasks": "ok"}


class TestAuth:
    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/customers", json=ADA)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"

    async def test_a_wrong_token_is_401_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/customers", json=ADA, headers={"Authorization": "Bearer nope"}
        )
        assert response.status_code == 401
        assert await row_counts(app) == (0, 0)


class TestCreateCustomer:
    async def test_201_with_the_customer_and_its_id(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/customers", json=ADA, headers=AUTH)

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["id"]
        assert body["email"] == "ada.lovelace@example.com"
        assert body["phone"] == "+14155550100"
        assert (body["first_name"], body["last_name"]) == ("Ada", "Lovelace")
        assert body["birth_date"] == "1815-12-10"
        assert body["country"] == "GB"
        assert body["city"] == "London"
        assert body["acquisition_channel"] == "referral"
        assert body["social_handles"] == {"x": "@ada"}
        assert body["external_ids"] == {"crm": "A-1"}
        assert body["created_at"] and body["updated_at"]

    async def test_the_customer_can_be_read_back(self, client: httpx.AsyncClient) -> None:
        created = (await client.post("/customers", json=ADA, headers=AUTH)).json()

        response = await client.get(f"/customers/{created['id']}", headers=AUTH)

        assert response.status_code == 200
        assert response.json()["email"] == "ada.lovelace@example.com"

    async def test_customer_registered_goes_to_the_configured_topic(
        self, app: FastAPI, client: httpx.AsyncClient, kafka_settings: KafkaSettings
    ) -> None:
        created = (await client.post("/customers", json=ADA, headers=AUTH)).json()

        [message] = await outbox(app)
        assert message.topic == kafka_settings.topic
        envelope = decode(message.value, [(k, v.encode()) for k, v in message.headers])
        assert envelope.type == "rapport.customer.registered.v2"
        assert envelope.subject == created["id"]
        assert envelope.data.email == "ada.lovelace@example.com"  # type: ignore[attr-defined]

    async def test_a_duplicate_email_is_409_with_the_existing_id(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        first = (await client.post("/customers", json=ADA, headers=AUTH)).json()

        again = {**ADA, "email": "ADA.LOVELACE@example.com", "first_name": "Augusta"}
        response = await client.post("/customers", json=again, headers=AUTH)

        assert response.status_code == 409
        body = response.json()
        assert body["error"] == "conflict"
        assert body["existing_id"] == first["id"]
        assert await row_counts(app) == (1, 1)

    async def test_an_external_id_held_by_another_customer_is_409_with_its_id(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        first = (await client.post("/customers", json=ADA, headers=AUTH)).json()

        other = {**ADA, "email": "augusta@example.com", "external_ids": {"crm": "A-1", "pos": "9"}}
        response = await client.post("/customers", json=other, headers=AUTH)
        elsewhere = {**other, "external_ids": {"pos": "A-1"}}  # the same id in another system
        accepted = await client.post("/customers", json=elsewhere, headers=AUTH)

        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "conflict" and "external id" in body["message"]
        assert body["existing_id"] == first["id"]
        assert accepted.status_code == 201, accepted.text
        assert await row_counts(app) == (2, 2)


INVALID: dict[str, dict[str, Any]] = {
    "bad email": {**ADA, "email": "not-an-email"},
    "non-E.164 phone": {**ADA, "phone": "415-555-0100"},
    "future birth date": {**ADA, "birth_date": (date.today() + timedelta(days=2)).isoformat()},
    "unknown field": {**ADA, "favourite_colour": "teal"},
    "missing last name": {key: value for key, value in ADA.items() if key != "last_name"},
}


class TestInvalidInput:
    async def test_each_bad_body_is_422_json_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        for label, body in INVALID.items():
            response = await client.post("/customers", json=body, headers=AUTH)

            assert response.status_code == 422, (label, response.text)
            reply = response.json()
            assert reply["error"] == "validation_error", label
            assert reply["message"], label
        assert await row_counts(app) == (0, 0)


class TestOversizedCustomer:
    async def test_a_customer_whose_event_is_over_the_broker_limit_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        # 1.2 MB of handles: its customer.registered could never be published.
        handles = {f"network-{n}": "h" * 600 for n in range(2000)}
        body = {**ADA, "social_handles": handles}

        response = await client.post("/customers", json=body, headers=AUTH)

        # 413 from the outbox's size check; 422 once the body's own limits catch it first.
        assert response.status_code in (413, 422), response.text
        assert response.json()["message"]
        assert await row_counts(app) == (0, 0)
        assert (await client.post("/customers", json=ADA, headers=AUTH)).status_code == 201


class TestReadCustomer:
    async def test_an_unknown_id_is_404_json(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody", headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/customers", json={**ADA, **overrides}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


class TestIdempotencyKey:
    async def test_a_retry_with_the_same_key_replays_the_first_answer(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        headers = {**AUTH, "Idempotency-Key": "signup-42"}
        first = await client.post("/customers", json=ADA, headers=headers)
        again = await client.post("/customers", json=ADA, headers=headers)

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert await row_counts(app) == (1, 1)

    async def test_the_same_key_with_another_body_is_422(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        headers = {**AUTH, "Idempotency-Key": "signup-43"}
        await client.post("/customers", json=ADA, headers=headers)
        other = await client.post(
            "/customers", json={**ADA, "email": "grace@example.com"}, headers=headers
        )

        assert other.status_code == 422
        assert other.json()["error"] == "idempotency_key_reused"
        assert await row_counts(app) == (1, 1)


class TestPatchCustomer:
    async def test_changes_only_what_is_sent_and_publishes_it(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)

        response = await client.patch(
            f"/customers/{ada['id']}",
            json={"city": "Paris", "phone": None, "social_handles": None},
            headers=AUTH,
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["city"], body["phone"], body["first_name"]) == ("Paris", None, "Ada")
        assert body["social_handles"] == {}
        updated = [m for m in await outbox(app) if m.event_type.endswith("updated.v1")]
        envelope = decode(updated[0].value, [(k, v.encode()) for k, v in updated[0].headers])
        assert envelope.data.changes == {"city": "Paris", "phone": None, "social_handles": {}}  # type: ignore[attr-defined]

    async def test_an_email_of_another_customer_is_409_and_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        grace = await create(client, email="grace@example.com", external_ids={})

        response = await client.patch(
            f"/customers/{grace['id']}", json={"email": ADA["email"]}, headers=AUTH
        )

        assert response.status_code == 409
        assert response.json()["existing_id"] == ada["id"]
        unchanged = await client.get(f"/customers/{grace['id']}", headers=AUTH)
        assert unchanged.json()["email"] == "grace@example.com"

    async def test_bad_changes_are_422_and_change_nothing(self, client: httpx.AsyncClient) -> None:
        ada = await create(client)
        for body in (
            {"email": None},
            {"phone": "12"},
            {"birth_date": "2999-01-01"},
            {"colour": "teal"},
        ):
            response = await client.patch(f"/customers/{ada['id']}", json=body, headers=AUTH)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"] == "validation_error"
        again = await client.get(f"/customers/{ada['id']}", headers=AUTH)
        assert again.json() == {**ada, "accounts": []}  # the read adds the accounts

    async def test_an_unknown_customer_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.patch("/customers/nobody", json={"city": "Rome"}, headers=AUTH)
        assert response.status_code == 404


class TestSearchCustomers:
    async def test_by_exact_email_name_words_and_country_in_pages(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        await create(
            client,
            email="grace@example.com",
            first_name="Grace",
            last_name="Hopper",
            country="US",
            external_ids={},
        )
        await create(
            client, email="alan@example.com", first_name="Alan", last_name="Turing", external_ids={}
        )

        by_email = await client.get("/customers", params={"email": ADA["email"]}, headers=AUTH)
        by_name = await client.get("/customers", params={"q": "hop gra"}, headers=AUTH)
        in_gb = await client.get("/customers", params={"country": "gb"}, headers=AUTH)
        first = await client.get("/customers", params={"limit": 2}, headers=AUTH)
        rest = await client.get(
            "/customers", params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=AUTH
        )

        assert [c["id"] for c in by_email.json()["items"]] == [ada["id"]]
        assert [c["last_name"] for c in by_name.json()["items"]] == ["Hopper"]
        assert sorted(c["last_name"] for c in in_gb.json()["items"]) == ["Lovelace", "Turing"]
        paged = [c["id"] for c in first.json()["items"] + rest.json()["items"]]
        assert len(set(paged)) == 3
        assert rest.json()["next_cursor"] is None

    async def test_by_phone_and_by_external_id(self, client: httpx.AsyncClient) -> None:
        ada = await create(client, phone="+442079460000", external_ids={"shop": "c-1815"})
        await create(
            client,
            email="grace@example.com",
            phone="+14155550100",
            external_ids={"shop": "c-1906", "crm": "c-1815"},
        )

        async def found(**params: str) -> list[str]:
            reply = await client.get("/customers", params=params, headers=AUTH)
            assert reply.status_code == 200, reply.text
            return [c["id"] for c in reply.json()["items"]]

        assert await found(phone="+442079460000") == [ada["id"]]
        assert await found(external_id="shop:c-1815") == [ada["id"]]
        assert await found(external_id="shop:c-9999") == []
        assert await found(phone="+10000000000") == []

    async def test_bad_parameters_are_422(self, client: httpx.AsyncClient) -> None:
        for params in (
            {"cursor": "garbage!"},
            {"tier": "diamond"},
            {"limit": 0},
            {"external_id": "no-system"},
        ):
            response = await client.get("/customers", params=params, headers=AUTH)
            assert response.status_code == 422, (params, response.text)


async def publish_as_campaign(settings: KafkaSettings, *events: Event) -> None:
    """Put events on the log as the campaign service would."""
    producer = create_producer(settings, client_id="campaign")
    await producer.start()
    try:
        for event in events:
            message = encode(Envelope(data=event, source="/services/campaign"))
            await producer.send_and_wait(
                settings.topic, value=message.value, key=message.key, headers=message.headers
            )
    finally:
        await producer.stop()


class TestSearchBySegment:
    @pytest.mark.consumes
    async def test_members_of_a_segment_by_id_or_name_with_other_filters(
        self, client: httpx.AsyncClient, kafka_settings: KafkaSettings
    ) -> None:
        ada = await create(client)
        grace = await create(client, email="grace@example.com", country="US", external_ids={})
        alan = await create(client, email="alan@example.com", country="FR", external_ids={})
        await publish_as_campaign(
            kafka_settings,
            SegmentEntered(customer_id=ada["id"], segment_id="seg-1", segment_name="VIP"),
            SegmentEntered(customer_id=alan["id"], segment_id="seg-1", segment_name="VIP"),
            SegmentEntered(customer_id=grace["id"], segment_id="seg-2", segment_name="Lapsed"),
            SegmentEntered(customer_id=grace["id"], segment_id="seg-1", segment_name="VIP"),
            SegmentExited(customer_id=grace["id"], segment_id="seg-1", segment_name="VIP"),
        )

        async def found(**params: str) -> list[str]:
            reply = await client.get("/customers", params=params, headers=AUTH)
            assert reply.status_code == 200, reply.text
            return sorted(c["id"] for c in reply.json()["items"])

        async def settled() -> bool:
            return await found(segment="seg-2") == [grace["id"]] and await found(
                segment="VIP"
            ) == sorted([ada["id"], alan["id"]])

        assert await poll_until(settled), await found(segment="VIP")
        assert await found(segment="seg-1") == sorted([ada["id"], alan["id"]])
        assert await found(segment="Lapsed") == [grace["id"]]
        assert await found(segment="VIP", country="FR") == [alan["id"]]
        assert await found(segment="nobody-here") == []


class TestConsents:
    async def test_each_change_is_versioned_in_the_receipt_and_published(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        url = f"/customers/{ada['id']}/consents"

        granted = await client.put(
            url,
            json={
                "purpose": "marketing",
                "channel": "email",
                "granted": True,
                "source": "web_form",
                "text_version": "2026-01",
                "actor": "ada",
            },
            headers=AUTH,
        )
        shared = await client.put(
            url,
            json={
                "purpose": "partner_sharing",
                "partner_id": "p-1",
                "slices": ["demographics", "contact"],
                "granted": True,
            },
            headers=AUTH,
        )
        revoked = await client.put(
            url,
            json={
                "purpose": "marketing",
                "channel": "email",
                "granted": False,
                "source": "unsubscribe_link",
            },
            headers=AUTH,
        )

        assert (granted.status_code, shared.status_code, revoked.status_code) == (200, 200, 200)
        receipt = (await client.get(url, headers=AUTH)).json()
        assert receipt["version"] == 3
        current = {(c["purpose"], c["channel"], c["partner_id"]): c for c in receipt["consents"]}
        assert current[("marketing", "email", None)]["granted"] is False
        assert current[("partner_sharing", None, "p-1")]["slices"] == ["contact", "demographics"]
        history = receipt["history"]
        assert [h["version"] for h in history] == [1, 2, 3]
        assert (history[0]["source"], history[0]["text_version"], history[0]["actor"]) == (
            "web_form",
            "2026-01",
            "ada",
        )
        events = [
            decode(m.value, [(k, v.encode()) for k, v in m.headers])
            for m in await outbox(app)
            if m.event_type.startswith("rapport.consent")
        ]
        assert [(e.type, e.data.version) for e in events] == [  # type: ignore[attr-defined]
            ("rapport.consent.granted.v1", 1),
            ("rapport.consent.granted.v1", 2),
            ("rapport.consent.revoked.v1", 3),
        ]

    async def test_repeating_the_current_state_records_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        body = {"purpose": "analytics", "granted": True}
        url = f"/customers/{ada['id']}/consents"
        await client.put(url, json=body, headers=AUTH)
        await client.put(url, json=body, headers=AUTH)
        assert (await client.get(url, headers=AUTH)).json()["version"] == 1

    async def test_an_ill_scoped_consent_is_422_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        for body in (
            {"purpose": "marketing", "granted": True},
            {"purpose": "analytics", "channel": "sms", "granted": True},
            {"purpose": "partner_sharing", "slices": ["contact"], "granted": True},
            {"purpose": "partner_sharing", "partner_id": "p-1", "granted": True},
            {"purpose": "partner_sharing", "partner_id": "p", "slices": ["dna"], "granted": True},
            {"purpose": "telepathy", "granted": True},
        ):
            url = f"/customers/{ada['id']}/consents"
            response = await client.put(url, json=body, headers=AUTH)
            assert response.status_code == 422, (body, response.text)
        assert await row_counts(app) == (1, 1)

    async def test_an_unknown_customer_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/customers/nobody/consents",
            json={"purpose": "analytics", "granted": True},
            headers=AUTH,
        )
        assert response.status_code == 404


WRITE_KEY_AUTH = {
    "Authorization": "Basic cmFwcG9ydC1kZXYtd3JpdGUta2V5Og=="
}  # rapport-dev-write-key:


class TestTheCustomer360OverHttp:
    @pytest.mark.consumes
    async def test_orders_merge_unmerge_metrics_and_analytics_answer_over_http(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        dupe = await create(client, email="ada.l@example.com", external_ids={})
        calls = [
            {
                "type": "track",
                "userId": who,
                "event": "Order Completed",
                "messageId": f"m-{n}",
                "timestamp": f"2026-03-0{n + 2}T10:00:00Z",
                "properties": {"order_id": f"o-{n}", "revenue": 10 * (n + 1)},
            }
            for n, who in enumerate([ada["id"], dupe["id"], dupe["id"]])
        ]
        tracked = await client.post("/v1/batch", json={"batch": calls}, headers=WRITE_KEY_AUTH)
        assert tracked.status_code == 200, tracked.text

        async def orders_of(customer_id: str, count: int) -> bool:
            metrics = await client.get(f"/customers/{customer_id}/metrics", headers=AUTH)
            return metrics.status_code == 200 and metrics.json()["orders"] == count

        assert await poll_until(lambda: orders_of(dupe["id"], 2))
        merged = await client.post(
            f"/customers/{ada['id']}/merge",
            json={"merged_customer_id": dupe["id"], "actor": "rep-1"},
            headers=AUTH,
        )
        after_merge = (await client.get(f"/customers/{ada['id']}/metrics", headers=AUTH)).json()
        dupe_view = (await client.get(f"/customers/{dupe['id']}", headers=AUTH)).json()
        timeline = (
            await client.get(
                f"/customers/{ada['id']}/timeline",
                params={"type": "order.completed"},
                headers=AUTH,
            )
        ).json()
        twice = await client.post(
            f"/customers/{ada['id']}/merge", json={"merged_customer_id": dupe["id"]}, headers=AUTH
        )
        unmerged = await client.post(
            f"/customers/{ada['id']}/unmerge",
            json={"merged_customer_id": dupe["id"]},
            headers=AUTH,
        )
        after_unmerge = (await client.get(f"/customers/{ada['id']}/metrics", headers=AUTH)).json()
        trends = await client.get(
            "/analytics/trends",
            params={
                "metric": "revenue",
                "by": "country",
                "interval": "month",
                "from": "2026-03-01",
                "to": "2026-03-31",
            },
            headers=AUTH,
        )
        tiers = await client.get("/analytics/tiers", headers=AUTH)
        forecast = await client.get(
            "/analytics/forecast", params={"from": "2026-03-01", "to": "2026-03-10"}, headers=AUTH
        )
        disclosures = await client.get(f"/customers/{ada['id']}/disclosures", headers=AUTH)
        bad_range = await client.get(
            "/analytics/trends", params={"from": "2026-04-01", "to": "2026-03-01"}, headers=AUTH
        )

        assert merged.status_code == 200, merged.text
        assert merged.json()["reason"] == "manual"
        assert (after_merge["orders"], after_merge["revenue"]) == (3, "60.00")
        assert (dupe_view["status"], dupe_view["merged_into"]) == ("merged", ada["id"])
        assert [i["data"]["order_id"] for i in timeline["items"]] == ["o-2", "o-1", "o-0"]
        assert twice.status_code == 409
        assert unmerged.status_code == 200 and unmerged.json()["undone_at"]
        assert after_unmerge["orders"] == 1
        assert trends.status_code == 200
        assert {s["group"]: s["points"][0]["value"] for s in trends.json()["series"]} == {
            "GB": 60.0
        }
        assert tiers.status_code == 200 and tiers.json()["ranked_customers"] == 2
        assert forecast.status_code == 422 and "history" in forecast.json()["message"]
        assert disclosures.status_code == 200 and disclosures.json() == []
        assert bad_range.status_code == 422


OUT_OF_RANGE_ANALYTICS = {
    "trends to the last day of the calendar": ("/analytics/trends", {"to": "9999-12-31"}),
    "trends to the first day, without from": ("/analytics/trends", {"to": "0001-01-01"}),
    "trends over the whole calendar by day": (
        "/analytics/trends",
        {"from": "0001-01-01", "to": "9999-12-31", "interval": "day"},
    ),
    "trends over three centuries by day": (
        "/analytics/trends",
        {"from": "1900-01-01", "to": "2199-12-31", "interval": "day"},
    ),
    "forecast to the last day of the calendar": ("/analytics/forecast", {"to": "9999-12-31"}),
    "forecast to the first day, without from": ("/analytics/forecast", {"to": "0001-01-01"}),
    "forecast over the whole calendar by month": (
        "/analytics/forecast",
        {"from": "0001-01-01", "to": "9999-12-31", "interval": "month"},
    ),
}


class TestAnalyticsOutOfRange:
    @pytest.mark.parametrize("case", list(OUT_OF_RANGE_ANALYTICS))
    async def test_each_is_422_json(self, client: httpx.AsyncClient, case: str) -> None:
        path, params = OUT_OF_RANGE_ANALYTICS[case]

        response = await client.get(path, params=params, headers=AUTH)

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_request"

    async def test_a_thousand_weeks_still_answer(self, client: httpx.AsyncClient) -> None:
        start = date(2000, 1, 3)  # a Monday: exactly 1000 weeks
        params = {"from": str(start), "to": str(start + timedelta(weeks=1000, days=-1))}

        response = await client.get("/analytics/trends", params=params, headers=AUTH)

        assert response.status_code == 200, response.text
        assert len(response.json()["series"][0]["points"]) == 1000


async def order_weeks(client: httpx.AsyncClient, revenues: list[int]) -> None:
    """One order per week from Monday 5 January 2026, with the given revenues."""
    customer = await create(client)
    monday = date(2026, 1, 5)
    calls = [
        {
            "type": "track",
            "userId": customer["id"],
            "event": "Order Completed",
            "messageId": f"w-{n}",
            "timestamp": f"{monday + timedelta(weeks=n)}T10:00:00Z",
            "properties": {"order_id": f"w-{n}", "revenue": revenue},
        }
        for n, revenue in enumerate(revenues)
    ]
    tracked = await client.post("/v1/batch", json={"batch": calls}, headers=WRITE_KEY_AUTH)
    assert tracked.status_code == 200, tracked.text

    async def recorded() -> bool:
        metrics = await client.get(f"/customers/{customer['id']}/metrics", headers=AUTH)
        return metrics.status_code == 200 and metrics.json()["orders"] == len(revenues)

    assert await poll_until(recorded)


WEEKS = {"from": "2026-01-05", "to": "2026-03-01", "interval": "week", "periods": 3}


@pytest.mark.consumes
class TestForecastOverHttp:
    async def test_a_rising_history_is_continued_with_its_backtest(
        self, client: httpx.AsyncClient
    ) -> None:
        revenues = [100, 110, 120, 130, 140, 150, 160, 170]
        await order_weeks(client, revenues)

        response = await client.get("/analytics/forecast", params=WEEKS, headers=AUTH)

        assert response.status_code == 200, response.text
        body = response.json()
        assert [p["value"] for p in body["history"]] == revenues
        assert [p["period"] for p in body["forecast"]] == ["2026-03-02", "2026-03-09", "2026-03-16"]
        assert all(p["value"] > 170 for p in body["forecast"])
        assert "statsmodels" in body["method"]
        assert body["backtest"]["holdout"] == 2
        assert body["backtest"]["actual"] == [160, 170]
        assert body["backtest"]["mae"] < 20

    @pytest.mark.parametrize("failure", ["the fit raises", "the forecast is NaN"])
    async def test_a_model_that_fails_is_422_not_500(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        failure: str,
    ) -> None:
        import numpy as np
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        class NanResults:
            def forecast(self, steps: int) -> Any:
                return np.full(steps, np.nan)

        def broken_fit(*_args: Any, **_kwargs: Any) -> Any:
            if failure == "the fit raises":
                raise np.linalg.LinAlgError("SVD did not converge")
            return NanResults()

        await order_weeks(client, [100, 110, 120, 130, 140, 150, 160, 170])
        monkeypatch.setattr(ExponentialSmoothing, "fit", broken_fit)
        # Fit on a thread of this process, where the patch is (not in the worker process).
        monkeypatch.setattr(app.state.forecaster, "worker", None)

        response = await client.get("/analytics/forecast", params=WEEKS, headers=AUTH)

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_request"
