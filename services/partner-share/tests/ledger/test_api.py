"""The audit ledger over HTTP, with the real lifespan, a real broker and a real database."""

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    profile_knows,
    read_log,
    read_ref,
    register_partner,
    share,
)
from sqlalchemy import text

from rapport_events.settings import KafkaSettings
from rapport_events.testing.migrations import PAST_32_BITS, skip_ids_past, skip_unless
from rapport_partner_share.security import email_digest


class TestAuditLedger:
    async def test_every_disclosure_is_in_the_ledger_and_on_the_log(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
        kafka_settings: KafkaSettings,
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "loyalty"], version=7)

        read = await read_ref(client, partner, ref, **{"X-Request-ID": "req-42"})
        await client.get("/partner/v1/customers?purpose=analytics", headers=partner.headers)
        await client.post(
            "/partner/v1/match",
            headers=partner.headers,
            json={"emails": [email_digest("c-1@example.com")]},
        )

        assert read.headers["X-Request-ID"] == "req-42"
        page = (await client.get("/customers/c-1/disclosures", headers=AUTH)).json()
        match, feed, single = page["disclosures"]
        assert single["request_id"] == "req-42"
        assert single["purpose"] == "cross_selling"
        assert single["consent_version"] == 7
        assert single["slices"] == ["contact", "loyalty"]
        assert single["fields"] == [
            "contact.email",
            "contact.first_name",
            "contact.last_name",
            "contact.phone",
        ]
        assert (single["partner_id"], single["partner_ref"], single["customer_id"]) == (
            partner.id,
            ref,
            "c-1",
        )
        assert feed["purpose"] == "analytics"
        assert match["fields"] == ["contact.email_sha256"]
        published = await read_log(kafka_settings, "rapport.partner.data.disclosed.v1", 3)
        assert {e.id for e in published} == {d["id"] for d in page["disclosures"]}
        assert {e.data.request_id for e in published} >= {"req-42"}
        admin = await client.get(f"/disclosures?partner_id={partner.id}&limit=2", headers=AUTH)
        rest = await client.get(
            f"/disclosures?partner_id={partner.id}&cursor={admin.json()['next_cursor']}",
            headers=AUTH,
        )
        assert [d["id"] for d in admin.json()["disclosures"] + rest.json()["disclosures"]] == [
            d["id"] for d in page["disclosures"]
        ]

    async def test_a_cursor_that_is_not_a_ledger_id_is_400(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        await read_ref(client, partner, ref)

        for cursor in (
            "\u00b2",
            "\u0663",
            "1\u00b2",
            "99999999999999999999",
            "9223372036854775808",
            "00000000000000000001",
            "-1",
            "1.5",
            " 1",
        ):
            for path in ("/disclosures", "/customers/c-1/disclosures"):
                response = await client.get(path, params={"cursor": cursor}, headers=AUTH)
                assert response.status_code == 400, (path, cursor, response.text)
                assert response.json()["error"] == "invalid_request"
        for cursor in ("2147483648", "9223372036854775807"):
            paged = await client.get("/disclosures", params={"cursor": cursor}, headers=AUTH)
            assert paged.status_code == 200, paged.text
            assert len(paged.json()["disclosures"]) == 1

    async def test_ledger_ids_past_32_bits_page_through_the_api(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
        database_url: str,
    ) -> None:
        skip_unless(database_url, "postgresql", "only PostgreSQL has a sequence to move")
        await skip_ids_past(app.state.runtime.engine, "partner_share_disclosures", PAST_32_BITS)
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        for _ in range(3):
            await read_ref(client, partner, ref)

        first = await client.get("/disclosures", params={"limit": 1}, headers=AUTH)
        cursor = first.json()["next_cursor"]
        rest = await client.get(
            "/customers/c-1/disclosures", params={"cursor": cursor}, headers=AUTH
        )

        assert int(cursor) == PAST_32_BITS + 3
        assert rest.status_code == 200, rest.text
        assert len(rest.json()["disclosures"]) == 2
        assert rest.json()["next_cursor"] is None

    async def test_the_database_refuses_to_change_or_delete_a_ledger_entry(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        await read_ref(client, partner, ref)

        for statement in (
            "UPDATE partner_share_disclosures SET purpose = 'other'",
            "DELETE FROM partner_share_disclosures",
        ):
            with pytest.raises(Exception, match="append-only"):
                async with app.state.runtime.engine.begin() as connection:
                    await connection.execute(text(statement))

        [entry] = (await client.get("/disclosures", headers=AUTH)).json()["disclosures"]
        assert entry["purpose"] == "cross_selling"
