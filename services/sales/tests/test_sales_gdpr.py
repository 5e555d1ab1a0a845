"""A customer's sales data is in their export and leaves with their erasure; the account,
its deals and activities stay without the person. Through the real log as well."""

from datetime import timedelta

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sales_testing import AUTH, apply, person

from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope, encode
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import until_value
from rapport_events.types import AccountJoined, CustomerErased, CustomerMerged

RAW = b"""From: Ada <ada@acme.example>
To: grace@rapport.example
Subject: Our budget
Message-ID: <b-1@acme.example>

My personal phone is 555-0100.
"""


async def sales_data_of(app: FastAPI, client: httpx.AsyncClient) -> tuple[str, str, str]:
    ada = person(email="ada@acme.example")
    await apply(app, ada)
    account = (
        await client.post(
            "/accounts", json={"name": "Acme", "domain": "acme.example"}, headers=AUTH
        )
    ).json()["id"]
    deal = (
        await client.post(
            "/opportunities",
            json={
                "account_id": account,
                "name": "D",
                "amount": "10",
                "customer_id": ada.customer_id,
            },
            headers=AUTH,
        )
    ).json()["id"]
    await client.post("/emails", content=RAW, headers={**AUTH, "Content-Type": "message/rfc822"})
    starts = utcnow() + timedelta(days=1)
    await client.post(
        "/meetings",
        json={
            "subject": "Demo",
            "account_id": account,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(),
            "attendees": ["ada@acme.example", "cto@acme.example"],
        },
        headers=AUTH,
    )
    return ada.customer_id, account, deal


class TestExportAndErasure:
    async def test_the_export_holds_the_person_and_the_erasure_removes_them(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer_id, account, deal = await sales_data_of(app, client)

        exported = (await client.get(f"/customers/{customer_id}/export", headers=AUTH)).json()
        await apply(app, CustomerErased(customer_id=customer_id))
        await apply(app, CustomerErased(customer_id=customer_id))  # again: nothing changes
        after = (await client.get(f"/customers/{customer_id}/export", headers=AUTH)).json()
        kept_account = (await client.get(f"/accounts/{account}", headers=AUTH)).json()
        kept_deal = (await client.get(f"/opportunities/{deal}", headers=AUTH)).json()
        activities = (await client.get(f"/accounts/{account}/activities", headers=AUTH)).json()
        await apply(app, person(customer_id, email="ada@acme.example"))  # a late replay
        late = (await client.get(f"/customers/{customer_id}/export", headers=AUTH)).json()

        records = exported["records"]
        assert exported["service"] == "sales"
        assert records["customers"][0]["email"] == "ada@acme.example"
        assert [c["account_id"] for c in records["account_contacts"]] == [account]
        assert [o["id"] for o in records["opportunities"]] == [deal]
        assert sorted(a["kind"] for a in records["activities"]) == ["email", "meeting"]
        assert {name: rows for name, rows in after["records"].items() if rows} == {
            "erasure_tombstones": after["records"]["erasure_tombstones"]
        }
        assert kept_account["contacts"] == []
        assert (kept_deal["customer_id"], kept_deal["contacts"], kept_deal["amount"]) == (
            None,
            [],
            "10.00",
        )
        by_kind = {a["kind"]: a for a in activities["items"]}
        assert by_kind["email"]["body"] == "" and "555-0100" not in str(activities)
        assert "ada@acme.example" not in str(activities)
        assert by_kind["meeting"]["addresses"] == ["cto@acme.example"]
        assert late["records"]["customers"] == []

    async def test_a_merge_moves_the_duplicate_s_links_to_the_survivor(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor, duplicate = person(), person()
        await apply(
            app,
            survivor,
            duplicate,
            AccountJoined(customer_id=duplicate.customer_id, account_id="acme", name="Acme"),
            AccountJoined(customer_id=survivor.customer_id, account_id="acme"),
            CustomerMerged(
                customer_id=survivor.customer_id,
                merged_customer_id=duplicate.customer_id,
                reason="email",
            ),
        )

        [account] = (await client.get("/accounts", headers=AUTH)).json()["items"]
        full = (await client.get(f"/accounts/{account['id']}", headers=AUTH)).json()
        gone = (await client.get(f"/customers/{duplicate.customer_id}/export", headers=AUTH)).json()

        assert [c["customer_id"] for c in full["contacts"]] == [survivor.customer_id]
        assert all(rows == [] for rows in gone["records"].values())


async def put_on_log(kafka: KafkaSettings, *events: Event) -> None:
    """The events on the topic the way profile's relay writes them (CloudEvents, keyed)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            message = encode(Envelope(data=event, source="/services/profile"))
            await producer.send_and_wait(
                kafka.topic, value=message.value, key=message.key, headers=message.headers
            )
    finally:
        await producer.stop()


class TestThroughTheLog:
    async def test_a_group_call_then_an_erasure_reach_sales_through_the_consumer(
        self, make_app: object, kafka_settings: KafkaSettings
    ) -> None:
        ada = person(email="ada@acme.example")
        async with make_app(consume_events=True) as (app, client):  # type: ignore[operator]
            await put_on_log(
                kafka_settings,
                ada,
                AccountJoined(customer_id=ada.customer_id, account_id="acme", name="Acme"),
            )

            async def linked() -> object:
                page = (await client.get("/accounts", headers=AUTH)).json()["items"]
                if not page:
                    return None
                full = (await client.get(f"/accounts/{page[0]['id']}", headers=AUTH)).json()
                return full["contacts"] or None

            contacts = await until_value(linked, 30, "the group call's contact in sales")
            await put_on_log(kafka_settings, CustomerErased(customer_id=ada.customer_id))

            async def erased() -> object:
                body = (
                    await client.get(f"/customers/{ada.customer_id}/export", headers=AUTH)
                ).json()
                return body if body["records"]["erasure_tombstones"] else None

            export = await until_value(erased, 30, "the erasure applied by sales")
            ready = await client.get("/readyz")

        assert [c["customer_id"] for c in contacts] == [ada.customer_id]  # type: ignore[index]
        assert export["records"]["customers"] == []  # type: ignore[index]
        assert export["records"]["account_contacts"] == []  # type: ignore[index]
        assert ready.status_code == 200, ready.text
