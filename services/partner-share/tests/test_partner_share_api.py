"""Partner-share over HTTP across its domains: settings, health, the admin token, a start
without profile, revocation, erasure and export; with its real lifespan, a real broker and a
real database. Each domain's own routes are tested beside it (`partners/test_api.py`, ...)."""

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    apply,
    consent_of,
    everything_stored,
    granted,
    profile_knows,
    read_ref,
    register_partner,
    revoked,
    settings_for,
    share,
)
from pydantic import ValidationError

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox, until_status
from rapport_events.types import CustomerErased, CustomerRegistered
from rapport_partner_share.main import create_app
from rapport_partner_share.settings import DEVELOPMENT_TOKEN, Settings


class TestSettings:
    def test_names_given_in_code_win(self) -> None:
        settings = Settings(database_url="sqlite:///x.db", api_token="from-code")
        assert (settings.database_url, settings.api_token) == ("sqlite:///x.db", "from-code")

    def test_the_development_token_is_refused_outside_development(self) -> None:
        with pytest.raises(ValidationError):
            Settings(environment="production", api_token=DEVELOPMENT_TOKEN)

    def test_profile_is_called_with_the_services_token_unless_told_otherwise(self) -> None:
        assert Settings(api_token="own").profile_token == "own"
        assert Settings(api_token="own", profile_api_token="other").profile_token == "other"


class TestHealth:
    async def test_healthz_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_turns_ready(self, client: httpx.AsyncClient) -> None:
        response = await until_status(lambda: client.get("/readyz"), timeout=10.0)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "tasks": "ok"}


class TestAdminAuth:
    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        for path in ("/customers/anyone", "/partners", "/disclosures", "/customers/x/export"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthorized"

    async def test_a_wrong_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/anyone", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401

    async def test_the_partner_api_does_not_take_the_admin_token(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/partner/v1/customers", headers=AUTH)
        assert response.status_code == 401


class TestAppWithoutProfile:
    async def test_starts_and_answers_while_profile_is_unreachable(
        self, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        app = create_app(
            settings_for(database_url, kafka_settings, "http://127.0.0.1:9", consume_events=False)
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://partner-share"
            ) as client,
        ):
            partner = await register_partner(client)
            await apply(app, granted("c-9", partner.id, ["contact"]))
            response = await client.get("/customers/c-9/export", headers=AUTH)
            await apply(app, revoked("c-9", partner.id))
            await drain_outbox(app)

        [consent] = response.json()["records"]["consents"]
        assert consent["fill_pending"] is True


class TestRevocation:
    async def test_the_next_request_is_404_and_the_slices_are_deleted(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "demographics"])
        assert (await read_ref(client, partner, ref)).status_code == 200

        await apply(app, revoked("c-1", partner.id))

        assert (await read_ref(client, partner, ref)).status_code == 404
        records = (await client.get("/customers/c-1/export", headers=AUTH)).json()["records"]
        assert records["shared_slices"] == [] and records["match_keys"] == []
        assert "c-1@example.com" not in await everything_stored(app)

    async def test_a_partial_revocation_keeps_the_other_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "demographics"])

        await apply(app, revoked("c-1", partner.id, ["contact"]))

        shown = (await read_ref(client, partner, ref)).json()["slices"]
        assert set(shown) == {"demographics"}
        assert "c-1@example.com" not in await everything_stored(app)

    async def test_a_late_older_grant_does_not_resume_sharing(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        await apply(app, revoked("c-1", partner.id, version=5))
        await apply(app, granted("c-1", partner.id, ["contact"], version=4))

        consent = await consent_of(client, "c-1", partner.id)

        assert consent is not None and consent["granted"] is False and consent["version"] == 5
        assert (await read_ref(client, partner, consent["ref"])).status_code == 404


class TestErasure:
    async def test_erasure_leaves_nothing_but_a_tombstone_and_tells_the_partner(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        await apply(
            app,
            CustomerRegistered(
                customer_id="c-1", email="c-1@example.com", first_name="A", last_name="L"
            ),
        )
        ref = await share(app, client, "c-1", partner.id, ["contact", "loyalty"])
        await read_ref(client, partner, ref)

        await apply(app, CustomerErased(customer_id="c-1"))
        await apply(app, granted("c-1", partner.id, ["contact"], version=9))  # too late

        export = (await client.get("/customers/c-1/export", headers=AUTH)).json()
        assert export["service"] == "partner-share" and export["customer_id"] == "c-1"
        tombstones = export["records"].pop("erasure_tombstones")
        assert all(rows == [] for rows in export["records"].values()), export["records"]
        assert [t["customer_id"] for t in tombstones] == ["c-1"]
        assert (await read_ref(client, partner, ref)).status_code == 404
        [entry] = (await client.get("/disclosures", headers=AUTH)).json()["disclosures"]
        assert entry["customer_id"] is None and entry["partner_ref"] == ref
        [notice] = (await client.get("/partner/v1/notifications", headers=partner.headers)).json()[
            "notifications"
        ]
        assert notice["type"] == "customer.erased"
        assert notice["payload"]["delete_slices"] == ["contact", "loyalty"]
        assert "c-1@example.com" not in await everything_stored(app)


class TestExport:
    async def test_an_unknown_customer_exports_empty_lists(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody/export", headers=AUTH)

        assert response.status_code == 200
        body = response.json()
        assert body["records"] == {
            "known_customers": [],
            "consents": [],
            "shared_slices": [],
            "match_keys": [],
            "disclosures": [],
            "notifications": [],
            "erasure_tombstones": [],
        }

    async def test_the_export_holds_every_slice_key_disclosure_and_notice(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "purchase_summary"])
        await read_ref(client, partner, ref)
        await apply(app, revoked("c-1", partner.id, ["purchase_summary"]))

        records = (await client.get("/customers/c-1/export", headers=AUTH)).json()["records"]

        assert [c["ref"] for c in records["consents"]] == [ref]
        assert records["shared_slices"][0]["data"]["email"] == "c-1@example.com"
        assert {k["kind"] for k in records["match_keys"]} == {"email", "phone"}
        assert len(records["disclosures"]) == 1
        assert records["notifications"][0]["payload"]["delete_slices"] == ["purchase_summary"]
