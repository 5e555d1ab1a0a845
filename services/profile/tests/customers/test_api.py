"""Customers over HTTP: create, read, change and search them, with the real lifespan, a real
broker and a real database."""

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import ADA, AUTH, create, outbox, row_counts

from rapport_events.base import Event
from rapport_events.codec import Envelope, decode, encode
from rapport_events.kafka import create_producer
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import poll_until
from rapport_events.types import SegmentEntered, SegmentExited


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
