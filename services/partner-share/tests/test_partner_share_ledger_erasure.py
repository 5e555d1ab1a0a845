"""The disclosure ledger outlives an erasure without personal data, findable by a privacy
officer holding the id (GDPR Art. 19 and 5(2)); on a real database and broker. On SQLite
the service's files (database and -wal) no longer hold the person once the erasure
commits."""

import hashlib
import hmac
from pathlib import Path

import httpx
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    apply,
    profile_customer,
    register_partner,
    share,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rapport_events.types import CustomerErased, CustomerRegistered

CUSTOMER = "c-ledger-1"


async def ledger_rows(app: FastAPI) -> list[dict[str, object]]:
    async with app.state.runtime.engine.connect() as connection:
        result = await connection.execute(text("SELECT * FROM partner_share_disclosures"))
        return [dict(row._mapping) for row in result]


class TestAnErasedCustomersDisclosures:
    async def test_stay_in_the_ledger_under_a_keyed_pseudonym_with_the_acknowledgements(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        person = profile_customer(CUSTOMER)
        profile_stub.customers[CUSTOMER] = person
        acme, globex = await register_partner(client), await register_partner(client)
        await apply(
            app,
            CustomerRegistered(
                customer_id=CUSTOMER,
                email=person["email"],
                first_name=person["first_name"],
                last_name=person["last_name"],
            ),
        )
        refs = {
            acme.id: await share(app, client, CUSTOMER, acme.id, ["contact", "loyalty"], 7),
            globex.id: await share(app, client, CUSTOMER, globex.id, ["contact"], 8),
        }
        for partner in (acme, globex):
            read = await client.get(
                f"/partner/v1/customers/{refs[partner.id]}", headers=partner.headers
            )
            assert read.status_code == 200

        database = make_url(app.state.settings.database_url).database
        on_sqlite = app.state.runtime.engine.dialect.name == "sqlite"
        files = [Path(f"{database}{suffix}") for suffix in ("", "-wal")] if on_sqlite else []
        phone = person["phone"].lstrip("+")
        personal_bytes = [person["email"], phone, person["first_name"], person["last_name"]]
        assert not files or any(b"Lovelace" in path.read_bytes() for path in files)

        await apply(app, CustomerErased(customer_id=CUSTOMER))
        left = {
            path.name: [value for value in personal_bytes if value.encode() in path.read_bytes()]
            for path in files
        }
        [notice] = (await client.get("/partner/v1/notifications", headers=acme.headers)).json()[
            "notifications"
        ]
        acked = await client.post(
            "/partner/v1/acknowledgements",
            headers=acme.headers,
            json={"notification_id": notice["id"]},
        )
        by_id = await client.get(
            "/privacy/disclosures", params={"customer_id": CUSTOMER}, headers=AUTH
        )

        assert all(not values for values in left.values()), left
        assert acked.status_code == 200
        settings = app.state.settings
        subject = hmac.new(
            settings.ledger_key.encode(), CUSTOMER.encode(), hashlib.sha256
        ).hexdigest()
        rows = await ledger_rows(app)
        assert len(rows) == 2 and {row["subject"] for row in rows} == {subject}
        personal = (CUSTOMER, person["email"], person["first_name"], person["last_name"])
        for row in rows:
            for value in row.values():
                assert not any(p in str(value) for p in personal), row
        assert by_id.status_code == 200, by_id.text
        ledger = by_id.json()
        assert ledger["subject"] == subject
        seen = {d["partner_id"]: d for d in ledger["disclosures"]}
        assert set(seen) == {acme.id, globex.id}
        assert (seen[acme.id]["slices"], seen[acme.id]["consent_version"]) == (
            ["contact", "loyalty"],
            7,
        )
        assert seen[acme.id]["erasure_notice"]["acknowledged"] is True
        assert seen[acme.id]["erasure_notice"]["acknowledged_via"] == "api"
        assert seen[globex.id]["erasure_notice"]["acknowledged"] is False
        assert CUSTOMER not in by_id.text and person["email"] not in by_id.text
        by_subject = await client.get(
            "/privacy/disclosures", params={"subject": subject}, headers=AUTH
        )
        assert by_subject.json() == ledger

    async def test_the_privacy_route_wants_one_key_and_the_admin_token(
        self, client: httpx.AsyncClient
    ) -> None:
        neither = await client.get("/privacy/disclosures", headers=AUTH)
        both = await client.get(
            "/privacy/disclosures", params={"customer_id": "c-1", "subject": "a" * 64}, headers=AUTH
        )
        not_a_pseudonym = await client.get(
            "/privacy/disclosures", params={"subject": "c-1"}, headers=AUTH
        )
        anonymous = await client.get("/privacy/disclosures", params={"customer_id": "c-1"})
        unknown = await client.get(
            "/privacy/disclosures", params={"customer_id": "nobody"}, headers=AUTH
        )

        assert (neither.status_code, both.status_code) == (400, 400)
        assert not_a_pseudonym.status_code == 422
        assert anonymous.status_code == 401
        assert unknown.status_code == 200 and unknown.json()["disclosures"] == []
