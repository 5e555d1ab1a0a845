"""Partner-share fed by the log: a real broker, a real profile over HTTP, a real webhook."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    TOKEN,
    WebhookReceiver,
    granted,
    publish,
    read_log,
    register_partner,
    revoked,
    serve,
    settings_for,
    wait_filled,
)

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox, until, until_status, wait_until_ready
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.types import CustomerRegistered, LineItem, OrderCompleted
from rapport_events.webhooks import verify as signature_matches
from rapport_events.webhooks import verify_standard
from rapport_partner_share.main import create_app
from rapport_profile.main import create_app as create_profile_app
from rapport_profile.settings import DEVELOPMENT_WRITE_KEY
from rapport_profile.settings import Settings as ProfileSettings


@pytest.fixture
async def profile(
    database_factory: DatabaseFactory, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[FastAPI, str]]:
    """The real profile service on its own database, served over HTTP on a free port."""
    app = create_profile_app(
        ProfileSettings(
            database_url=await database_factory("profile"), api_token=TOKEN, kafka=kafka_settings
        )
    )
    async with serve(app) as url:
        yield app, url
        await drain_outbox(app)


@pytest.fixture
async def consuming_app(
    database_factory: DatabaseFactory,
    kafka_settings: KafkaSettings,
    profile: tuple[FastAPI, str],
) -> AsyncIterator[FastAPI]:
    app = create_app(
        settings_for(await database_factory("partner_share"), kafka_settings, profile[1])
    )
    async with app.router.lifespan_context(app):
        await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(consuming_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=consuming_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://partner-share") as client:
        yield client


class TestKnownCustomersFromTheLog:
    async def test_a_registration_on_the_log_shows_up_without_personal_data(
        self, client: httpx.AsyncClient, kafka_settings: KafkaSettings
    ) -> None:
        assert (await until_status(lambda: client.get("/readyz"), timeout=10.0)).status_code == 200
        customer_id = str(uuid.uuid4())
        event = CustomerRegistered(
            customer_id=customer_id,
            email="grace@example.com",
            phone="+12025550143",
            first_name="Grace",
            last_name="Hopper",
        )
        await publish(kafka_settings, event)

        response = await until_status(lambda: client.get(f"/customers/{customer_id}", headers=AUTH))

        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"customer_id", "known_since"}
        assert body["customer_id"] == customer_id
        assert body["known_since"]

    async def test_a_customer_registered_in_profile_shows_up(
        self, client: httpx.AsyncClient, profile: tuple[FastAPI, str]
    ) -> None:
        async with httpx.AsyncClient(base_url=profile[1], headers=AUTH) as profile_client:
            created = await profile_client.post(
                "/customers",
                json={"email": "alan@example.com", "first_name": "Alan", "last_name": "Turing"},
            )
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]

        response = await until_status(lambda: client.get(f"/customers/{customer_id}", headers=AUTH))

        assert response.status_code == 200, response.text
        assert response.json()["customer_id"] == customer_id


class TestSharingThroughTheLog:
    async def test_a_consent_shares_profile_data_until_its_revocation_withdraws_it(
        self,
        client: httpx.AsyncClient,
        profile: tuple[FastAPI, str],
        kafka_settings: KafkaSettings,
        webhook: WebhookReceiver,
    ) -> None:
        partner = await register_partner(
            client, slices=["contact", "purchase_summary"], webhook_url=webhook.url
        )
        async with httpx.AsyncClient(base_url=profile[1], headers=AUTH) as profile_client:
            created = await profile_client.post(
                "/customers",
                json={
                    "email": "katherine@example.com",
                    "phone": "+12025550199",
                    "first_name": "Katherine",
                    "last_name": "Johnson",
                    "city": "Hampton",
                },
            )
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]

        await publish(
            kafka_settings, granted(customer_id, partner.id, ["contact", "purchase_summary"])
        )
        ref = (await wait_filled(client, customer_id, partner.id, timeout=20))["ref"]
        order = OrderCompleted(
            customer_id=customer_id,
            order_id="o-1",
            items=(LineItem(product_id="p-1", price=Decimal("42.00")),),
            revenue=Decimal("42.00"),
        )
        await publish(kafka_settings, order)

        async def counted() -> bool:
            reply = await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)
            return reply.json()["slices"]["purchase_summary"]["orders_count"] == 1

        await until(counted, timeout=15.0, what="the order in the purchase summary")
        shown = (await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)).json()
        assert shown["slices"]["contact"] == {
            "email": "katherine@example.com",
            "phone": "+12025550199",
            "first_name": "Katherine",
            "last_name": "Johnson",
        }
        assert shown["slices"]["purchase_summary"]["revenue"] == {"EUR": "42.00"}

        await publish(kafka_settings, revoked(customer_id, partner.id))
        gone = await until_status(
            lambda: client.get(f"/partner/v1/customers/{ref}", headers=partner.headers), 404
        )

        assert gone.status_code == 404
        await until(lambda: _received(webhook), timeout=15.0, what="the deletion notice")
        notice = webhook.calls[0]
        assert signature_matches(
            partner.webhook_secret, notice.body, notice.headers["x-rapport-signature"]
        )
        assert verify_standard(partner.webhook_secret, notice.body, notice.headers)
        assert json.loads(notice.body)["ref"] == ref
        disclosed = await read_log(kafka_settings, "rapport.partner.data.disclosed.v1", 2)
        assert {e.data.customer_id for e in disclosed} == {customer_id}
        assert {e.data.partner_ref for e in disclosed} == {ref}
        ledger = (await client.get(f"/customers/{customer_id}/disclosures", headers=AUTH)).json()
        assert {d["id"] for d in ledger["disclosures"]} == {e.id for e in disclosed}


async def _received(webhook: WebhookReceiver) -> bool:
    return bool(webhook.calls)


class TestConsentOnProfile:
    """Profile, partner-share and the log together: the customer's side of the sharing."""

    async def test_a_consent_given_on_profile_shows_the_partner_and_the_customer_everything(
        self, client: httpx.AsyncClient, profile: tuple[FastAPI, str]
    ) -> None:
        partner = await register_partner(client, slices=["contact", "loyalty"])
        async with httpx.AsyncClient(base_url=profile[1], headers=AUTH) as on_profile:
            created = await on_profile.post(
                "/customers",
                json={"email": "mary@example.com", "first_name": "Mary", "last_name": "Jackson"},
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            consent = {"purpose": "partner_sharing", "partner_id": partner.id}

            given = await on_profile.put(
                f"/customers/{customer_id}/consents",
                json={**consent, "slices": ["contact", "loyalty"], "granted": True},
            )
            assert given.status_code == 200, given.text
            ref = (await wait_filled(client, customer_id, partner.id, timeout=20))["ref"]
            read = await client.get(
                f"/partner/v1/customers/{ref}",
                headers={**partner.headers, "X-Request-ID": "flow-read-1"},
            )
            assert read.status_code == 200, read.text
            assert read.json()["slices"]["contact"] == {
                "email": "mary@example.com",
                "phone": None,
                "first_name": "Mary",
                "last_name": "Jackson",
            }

            disclosures = await eventually_json(
                lambda: on_profile.get(f"/customers/{customer_id}/disclosures"),
                lambda found: any(d["request_id"] == "flow-read-1" for d in found),
            )
            [shown] = [d for d in disclosures if d["request_id"] == "flow-read-1"]
            assert (shown["partner_id"], shown["partner_ref"]) == (partner.id, ref)
            assert shown["slices"] == ["contact", "loyalty"]
            assert shown["fields"] == [
                "contact.email",
                "contact.first_name",
                "contact.last_name",
            ]

            contributed = await client.post(
                "/partner/v1/events",
                headers=partner.headers,
                json={"ref": ref, "name": "Flight Booked", "properties": {"to": "LIS"}},
            )
            assert contributed.status_code == 202, contributed.text
            event_id = contributed.json()["event_id"]
            timeline = await eventually_json(
                lambda: on_profile.get(
                    f"/customers/{customer_id}/timeline",
                    params={"type": "partner.event.contributed"},
                ),
                lambda page: any(item["id"] == event_id for item in page["items"]),
            )
            [entry] = [item for item in timeline["items"] if item["id"] == event_id]
            assert entry["source"] == "/services/partner-share"
            assert entry["data"]["name"] == "Flight Booked"
            assert entry["data"]["properties"] == {"to": "LIS"}
            assert entry["data"]["partner_id"] == partner.id

            withdrawn = await on_profile.put(
                f"/customers/{customer_id}/consents", json={**consent, "granted": False}
            )
            assert withdrawn.status_code == 200, withdrawn.text

        gone = await until_status(
            lambda: client.get(f"/partner/v1/customers/{ref}", headers=partner.headers), 404
        )
        assert gone.status_code == 404, gone.text
        refused = await client.post(
            "/partner/v1/events",
            headers=partner.headers,
            json={"ref": ref, "name": "Flight Booked", "properties": {}},
        )
        assert refused.status_code == 404, refused.text


class TestGlobalPrivacyControl:
    """A browser's Sec-GPC on a tracking call reaches partner-share as a revocation."""

    async def test_stops_the_sharing_until_the_person_grants_it_again(
        self, client: httpx.AsyncClient, profile: tuple[FastAPI, str]
    ) -> None:
        partner = await register_partner(client, slices=["contact"])
        write_key = (DEVELOPMENT_WRITE_KEY, "")
        async with httpx.AsyncClient(base_url=profile[1], headers=AUTH) as on_profile:
            created = await on_profile.post(
                "/customers",
                json={"email": "gpc@example.com", "first_name": "Kay", "last_name": "Gee"},
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            consents = f"/customers/{customer_id}/consents"
            grant = {
                "purpose": "partner_sharing",
                "partner_id": partner.id,
                "slices": ["contact"],
                "granted": True,
            }
            assert (await on_profile.put(consents, json=grant)).status_code == 200
            ref = (await wait_filled(client, customer_id, partner.id, timeout=20))["ref"]
            shared = await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)
            assert shared.status_code == 200, shared.text

            tracked = await on_profile.post(
                "/v1/t",
                json={"userId": customer_id, "event": "Product Viewed"},
                auth=write_key,
                headers={"Sec-GPC": "1"},
            )
            assert tracked.status_code == 200, tracked.text
            gone = await until_status(
                lambda: client.get(f"/partner/v1/customers/{ref}", headers=partner.headers), 404
            )
            assert gone.status_code == 404, gone.text

            assert (await on_profile.put(consents, json=grant)).status_code == 200
            await wait_filled(client, customer_id, partner.id, timeout=20)
            again = await on_profile.post(
                "/v1/t",
                json={"userId": customer_id, "event": "Product Viewed"},
                auth=write_key,
                headers={"Sec-GPC": "1"},
            )
            assert again.status_code == 200, again.text
            receipt = (await on_profile.get(consents)).json()
        back = await client.get(f"/partner/v1/customers/{ref}", headers=partner.headers)
        assert back.status_code == 200, back.text  # the later grant holds against the signal
        sources = [h["source"] for h in receipt["history"]]
        assert sources == ["api", "gpc_header", "gpc_header", "api"]


async def eventually_json(
    fetch: Callable[[], Awaitable[httpx.Response]],
    holds: Callable[[Any], bool],
    timeout: float = 20.0,
) -> Any:
    """Poll `fetch` until its JSON body satisfies `holds`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = await fetch()
        assert response.status_code == 200, response.text
        body = response.json()
        if holds(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; last reply: {body}")
        await asyncio.sleep(0.1)
