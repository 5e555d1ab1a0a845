"""Partners over HTTP: registration, API keys and rate limits, with the real lifespan, a real
broker and a real database."""

import hashlib

import httpx
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    apply,
    everything_stored,
    granted,
    profile_customer,
    register_partner,
)

from rapport_events.testing.harness import until_status


class TestPartnerRegistration:
    async def test_the_key_and_secret_are_shown_once(self, client: httpx.AsyncClient) -> None:
        partner = await register_partner(client, slices=["contact", "segments"])

        assert partner.api_key.startswith("rpk_")
        assert partner.webhook_secret.startswith("whsec_")
        assert partner.body["slices"] == ["contact", "segments"]
        assert partner.body["purposes"] == ["cross_selling", "analytics"]
        shown = (await client.get(f"/partners/{partner.id}", headers=AUTH)).text
        listed = (await client.get("/partners", headers=AUTH)).text
        for text_ in (shown, listed):
            assert partner.api_key not in text_
            assert partner.webhook_secret not in text_
            assert partner.id in text_

    async def test_keys_are_stored_only_as_sha256(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        partner = await register_partner(client)
        rotated = await client.post(f"/partners/{partner.id}/keys", headers=AUTH)

        stored = await everything_stored(app)
        for key in (partner.api_key, rotated.json()["api_key"]):
            assert key not in stored
            assert key.removeprefix("rpk_") not in stored
            assert hashlib.sha256(key.encode()).hexdigest() in stored

    async def test_bad_registrations_are_422_and_store_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        changes: list[dict[str, object]] = [
            {"slices": ["contact", "shoe_size"]},
            {"slices": []},
            {"purposes": []},
            {"purposes": ["Cross Selling!"]},
            {"webhook_url": "not a url"},
            {"name": "   "},
            {"rate_limit_per_second": 0},
            {"api_key": "chosen-by-me"},
        ]
        for change in changes:
            body = {
                "name": "Acme Travel",
                "industry": "travel",
                "slices": ["contact"],
                "purposes": ["cross_selling"],
                **change,
            }
            response = await client.post("/partners", headers=AUTH, json=body)

            assert response.status_code == 422, (change, response.text)
            assert response.json()["error"] == "validation_error"
        assert (await client.get("/partners", headers=AUTH)).json() == {"partners": []}

    async def test_an_unknown_partner_is_404(self, client: httpx.AsyncClient) -> None:
        for response in (
            await client.get("/partners/nope", headers=AUTH),
            await client.delete("/partners/nope", headers=AUTH),
            await client.post("/partners/nope/keys", headers=AUTH),
        ):
            assert response.status_code == 404
            assert response.json()["error"] == "not_found"


class TestApiKeys:
    async def test_a_missing_or_made_up_key_is_401_json(self, client: httpx.AsyncClient) -> None:
        for headers in ({}, {"X-API-Key": "rpk_made-up"}, {"X-API-Key": "x" * 5000}):
            response = await client.get("/partner/v1/customers", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"

    async def test_a_rotated_key_is_refused_and_the_new_one_works(
        self, client: httpx.AsyncClient
    ) -> None:
        partner = await register_partner(client)
        assert (
            await client.get("/partner/v1/customers", headers=partner.headers)
        ).status_code == 200

        rotated = await client.post(f"/partners/{partner.id}/keys", headers=AUTH)

        assert rotated.status_code == 201
        new_key = rotated.json()["api_key"]
        old = await client.get("/partner/v1/customers", headers=partner.headers)
        new = await client.get("/partner/v1/customers", headers={"X-API-Key": new_key})
        assert (old.status_code, new.status_code) == (401, 200)
        keys = (await client.get(f"/partners/{partner.id}", headers=AUTH)).json()["keys"]
        assert [key["revoked_at"] is None for key in keys] == [False, True]

    async def test_a_revoked_key_is_401(self, client: httpx.AsyncClient) -> None:
        partner = await register_partner(client)
        [key] = partner.body["keys"]

        response = await client.delete(f"/partners/{partner.id}/keys/{key['id']}", headers=AUTH)

        assert response.status_code == 204
        assert (
            await client.get("/partner/v1/customers", headers=partner.headers)
        ).status_code == 401
        other = await client.delete(f"/partners/{partner.id}/keys/nope", headers=AUTH)
        assert other.status_code == 404

    async def test_a_removed_partner_is_401_and_its_slices_are_gone(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_stub.customers["c-1"] = profile_customer("c-1")
        await apply(app, granted("c-1", partner.id, ["contact", "segments"]))
        await until_status(lambda: self._contact_filled(client, app, partner.id))

        response = await client.delete(f"/partners/{partner.id}", headers=AUTH)

        assert response.status_code == 204
        assert (
            await client.get("/partner/v1/customers", headers=partner.headers)
        ).status_code == 401
        assert "c-1@example.com" not in await everything_stored(app)
        assert (await client.get("/partners", headers=AUTH)).json() == {"partners": []}

    @staticmethod
    async def _contact_filled(
        client: httpx.AsyncClient, app: FastAPI, partner_id: str
    ) -> httpx.Response:
        export = await client.get("/customers/c-1/export", headers=AUTH)
        slices = {row["slice"] for row in export.json()["records"]["shared_slices"]}
        return httpx.Response(200 if "contact" in slices else 404)


class TestRateLimit:
    async def test_past_the_burst_requests_get_429_with_retry_after(
        self, client: httpx.AsyncClient
    ) -> None:
        partner = await register_partner(client, rate_limit_per_second=0.2, rate_limit_burst=3)

        statuses = [
            (await client.get("/partner/v1/customers", headers=partner.headers)).status_code
            for _ in range(3)
        ]
        limited = await client.get("/partner/v1/customers", headers=partner.headers)

        assert statuses == [200, 200, 200]
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 5

    async def test_each_partner_has_its_own_bucket(self, client: httpx.AsyncClient) -> None:
        busy = await register_partner(client, rate_limit_per_second=0.2, rate_limit_burst=1)
        calm = await register_partner(client, rate_limit_per_second=0.2, rate_limit_burst=1)

        await client.get("/partner/v1/customers", headers=busy.headers)
        limited = await client.get("/partner/v1/customers", headers=busy.headers)
        other = await client.get("/partner/v1/customers", headers=calm.headers)

        assert (limited.status_code, other.status_code) == (429, 200)
