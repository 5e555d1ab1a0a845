"""Partner-share over HTTP, with its real lifespan, a real broker and a real database."""

import base64
import hashlib
import json

import httpx
import pytest
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    RegisteredPartner,
    WebhookReceiver,
    apply,
    consent_of,
    everything_stored,
    granted,
    profile_customer,
    read_log,
    register_partner,
    revoked,
    settings_for,
    share,
)
from pydantic import ValidationError
from sqlalchemy import text

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox, until, until_status
from rapport_events.testing.migrations import PAST_32_BITS, skip_ids_past, skip_unless
from rapport_events.types import (
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    OrderCompleted,
    SegmentEntered,
)
from rapport_events.webhooks import verify as signature_matches
from rapport_partner_share.main import create_app
from rapport_partner_share.security import email_digest, phone_digest
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


class TestKnownCustomer:
    async def test_an_unknown_customer_is_404_json(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody", headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_a_registration_shows_up_without_personal_data(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        await apply(
            app,
            CustomerRegistered(
                customer_id="c-1", email="grace@example.com", first_name="Grace", last_name="H"
            ),
        )

        response = await client.get("/customers/c-1", headers=AUTH)

        assert response.status_code == 200, response.text
        assert set(response.json()) == {"customer_id", "known_since"}
        assert "grace@example.com" not in await everything_stored(app)


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


def _customers(stub: ProfileStub, *ids: str) -> None:
    for customer_id in ids:
        stub.customers[customer_id] = profile_customer(customer_id)


async def _get(
    client: httpx.AsyncClient, partner: RegisteredPartner, ref: str, **headers: str
) -> httpx.Response:
    return await client.get(f"/partner/v1/customers/{ref}", headers={**partner.headers, **headers})


class TestPartnerReadsACustomer:
    async def test_it_sees_exactly_the_consented_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "segments"])

        response = await _get(client, partner, ref)

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ref"] == ref
        assert body["slices"] == {
            "contact": {
                "email": "c-1@example.com",
                "phone": "+14155550100",
                "first_name": "Ada",
                "last_name": "Lovelace",
            },
            "segments": {"segments": []},
        }
        assert '"c-1"' not in response.text  # the customer id never reaches a partner
        assert profile_stub.requests[0] == ("/customers/c-1", AUTH["Authorization"])

    async def test_demographics_carry_a_birth_year_and_age_band_not_the_birth_date(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["demographics"])

        shown = (await _get(client, partner, ref)).json()["slices"]

        assert set(shown) == {"demographics"}
        assert shown["demographics"]["birth_year"] == 1985
        assert shown["demographics"]["age_band"] in {"35-44", "45-54"}
        assert shown["demographics"]["city"] == "London"
        assert "1985-12-10" not in str(shown)

    async def test_only_slices_the_partner_is_registered_for_are_kept(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client, slices=["segments"])
        _customers(profile_stub, "c-1")
        await apply(app, granted("c-1", partner.id, ["contact", "segments"]))
        consent = await consent_of(client, "c-1", partner.id)
        assert consent is not None

        response = await _get(client, partner, consent["ref"])

        assert set(response.json()["slices"]) == {"segments"}
        export = (await client.get("/customers/c-1/export", headers=AUTH)).json()
        assert [row["slice"] for row in export["records"]["shared_slices"]] == ["segments"]
        assert profile_stub.requests == []  # nothing was fetched for a slice it may not have

    async def test_unknown_revoked_and_other_partners_refs_are_the_same_404(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        mine = await register_partner(client)
        theirs = await register_partner(client)
        _customers(profile_stub, "c-1", "c-2")
        ref_revoked = await share(app, client, "c-1", mine.id, ["contact"])
        await apply(app, revoked("c-1", mine.id))
        their_ref = await share(app, client, "c-2", theirs.id, ["contact"])

        replies = [
            await _get(client, mine, ref) for ref in ("0" * 32, ref_revoked, their_ref, "c-2")
        ]

        assert [r.status_code for r in replies] == [404, 404, 404, 404]
        shapes = {(r.json()["error"], r.json()["message"].split(" ")[0]) for r in replies}
        assert shapes == {("not_found", "no")}
        assert (await _get(client, theirs, their_ref)).status_code == 200

    async def test_refs_differ_per_partner_and_stay_stable_across_regrants(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        first = await register_partner(client)
        second = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref_first = await share(app, client, "c-1", first.id, ["contact"])
        ref_second = await share(app, client, "c-1", second.id, ["contact"])
        await apply(app, revoked("c-1", first.id, version=2))
        regranted = await share(app, client, "c-1", first.id, ["contact"], version=3)

        assert ref_first != ref_second
        assert regranted == ref_first
        assert len(ref_first) == 32

    async def test_a_purpose_the_partner_is_not_registered_for_is_400(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])

        response = await client.get(
            f"/partner/v1/customers/{ref}?purpose=resale", headers=partner.headers
        )

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        ledger = (await client.get("/disclosures", headers=AUTH)).json()["disclosures"]
        assert ledger == []


class TestRevocation:
    async def test_the_next_request_is_404_and_the_slices_are_deleted(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "demographics"])
        assert (await _get(client, partner, ref)).status_code == 200

        await apply(app, revoked("c-1", partner.id))

        assert (await _get(client, partner, ref)).status_code == 404
        records = (await client.get("/customers/c-1/export", headers=AUTH)).json()["records"]
        assert records["shared_slices"] == [] and records["match_keys"] == []
        assert "c-1@example.com" not in await everything_stored(app)

    async def test_a_partial_revocation_keeps_the_other_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "demographics"])

        await apply(app, revoked("c-1", partner.id, ["contact"]))

        shown = (await _get(client, partner, ref)).json()["slices"]
        assert set(shown) == {"demographics"}
        assert "c-1@example.com" not in await everything_stored(app)

    async def test_a_late_older_grant_does_not_resume_sharing(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        await apply(app, revoked("c-1", partner.id, version=5))
        await apply(app, granted("c-1", partner.id, ["contact"], version=4))

        consent = await consent_of(client, "c-1", partner.id)

        assert consent is not None and consent["granted"] is False and consent["version"] == 5
        assert (await _get(client, partner, consent["ref"])).status_code == 404


class TestChangesFeed:
    async def test_pages_through_customers_changed_since_a_time(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1", "c-2", "c-3")
        ref_1 = await share(app, client, "c-1", partner.id, ["contact"])
        middle = (await client.get("/partner/v1/customers", headers=partner.headers)).json()
        since = middle["customers"][0]["changed_at"]
        refs = [await share(app, client, c, partner.id, ["contact"]) for c in ("c-2", "c-3")]

        first = await client.get(
            "/partner/v1/customers",
            params={"changed_since": since, "limit": 1},
            headers=partner.headers,
        )
        second = await client.get(
            "/partner/v1/customers",
            params={"changed_since": since, "limit": 1, "cursor": first.json()["next_cursor"]},
            headers=partner.headers,
        )

        assert [c["ref"] for c in middle["customers"]] == [ref_1]
        assert [c["ref"] for c in first.json()["customers"]] == refs[:1]
        assert [c["ref"] for c in second.json()["customers"]] == refs[1:]
        assert second.json()["next_cursor"] is None
        assert set(second.json()["customers"][0]["slices"]) == {"contact"}

    async def test_bad_paging_is_a_4xx(self, client: httpx.AsyncClient) -> None:
        partner = await register_partner(client)
        for params, expected in (
            ({"cursor": "not-a-cursor"}, 400),
            ({"cursor": _cursor(["2026-01-01T00:00:00+00:00", "c-\u0000"])}, 400),
            ({"cursor": _cursor(["2026-01-01T00:00:00+00:00", "c" * 65])}, 400),
            ({"cursor": _cursor(["2026-01-01T00:00:00+00:00", 7])}, 400),
            ({"cursor": _cursor(["9999-12-31T23:59:59-10:00", "c-1"])}, 400),
            ({"cursor": _cursor(["2026-01-01T00:00:00+00:00"])}, 400),
            ({"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()}, 400),
            ({"cursor": "x" * 5000}, 400),
            ({"changed_since": "yesterday"}, 422),
            ({"limit": 0}, 422),
            ({"limit": 501}, 422),
        ):
            response = await client.get(
                "/partner/v1/customers", params=params, headers=partner.headers
            )
            assert response.status_code == expected, (params, response.text)


def _cursor(value: object) -> str:
    """A cursor built the way the API builds its own, around a value it never hands out."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


class TestMatch:
    async def test_matches_hashed_emails_and_phones_of_consenting_customers_only(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1", "c-2", "c-3")
        profile_stub.customers["c-2"]["phone"] = "+442071838750"
        ref_1 = await share(app, client, "c-1", partner.id, ["contact"])
        ref_2 = await share(app, client, "c-2", partner.id, ["contact"])
        await share(app, client, "c-3", partner.id, ["segments"])  # no contact: no match
        await apply(app, revoked("c-2", partner.id, ["contact"]))  # and now none for c-2

        response = await client.post(
            "/partner/v1/match",
            headers=partner.headers,
            json={
                "emails": [
                    email_digest("  C-1@Example.com "),
                    email_digest("c-2@example.com"),
                    email_digest("c-3@example.com"),
                    email_digest("nobody@example.com"),
                ],
                "phones": [phone_digest("+44 20 7183 8750"), phone_digest("+1 (415) 555-0100")],
            },
        )

        assert response.status_code == 200, response.text
        matches = response.json()["matches"]
        assert {(m["kind"], m["ref"]) for m in matches} == {("email", ref_1), ("phone", ref_1)}
        assert ref_2 not in response.text

    async def test_malformed_hashes_are_422(self, client: httpx.AsyncClient) -> None:
        partner = await register_partner(client)
        for body in (
            {"emails": ["ada@example.com"]},
            {"emails": ["ab" * 31]},
            {"phones": ["z" * 64]},
            {"emails": ["a" * 64] * 1001},
            {"hashes": ["a" * 64]},
        ):
            response = await client.post("/partner/v1/match", headers=partner.headers, json=body)
            assert response.status_code == 422, body


class TestOverlap:
    async def test_counts_under_k_are_withheld(
        self, database_url: str, kafka_settings: KafkaSettings, profile_stub: ProfileStub
    ) -> None:
        app = create_app(
            settings_for(
                database_url,
                kafka_settings,
                profile_stub.url,
                k_anonymity_threshold=3,
                consume_events=False,
            )
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://partner-share"
            ) as client,
        ):
            partner = await register_partner(client)
            ids = ["c-1", "c-2", "c-3"]
            _customers(profile_stub, *ids)
            for customer_id in ids:
                await share(app, client, customer_id, partner.id, ["contact", "segments"])
            for customer_id in ids:  # three in "frequent", one in "vip"
                await apply(
                    app,
                    SegmentEntered(
                        customer_id=customer_id, segment_id="s-f", segment_name="frequent"
                    ),
                )
            await apply(
                app, SegmentEntered(customer_id="c-1", segment_id="s-v", segment_name="vip")
            )
            hashes = [email_digest(f"{c}@example.com") for c in ids]

            two = await client.post(
                "/partner/v1/overlap", headers=partner.headers, json={"emails": hashes[:2]}
            )
            three = await client.post(
                "/partner/v1/overlap",
                headers=partner.headers,
                json={"emails": [*hashes, email_digest("stranger@example.com")]},
            )
            await drain_outbox(app)

        assert two.json() == {
            "submitted": 2,
            "matched": None,
            "suppressed": True,
            "k_threshold": 3,
            "segments": [],
        }
        assert three.json() == {
            "submitted": 4,
            "matched": 3,
            "suppressed": False,
            "k_threshold": 3,
            "segments": [{"segment_id": "s-f", "name": "frequent", "count": 3}],
        }


class TestContributedEvents:
    async def test_an_event_about_a_consenting_customer_is_published(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
        kafka_settings: KafkaSettings,
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["segments"])

        response = await client.post(
            "/partner/v1/events",
            headers=partner.headers,
            json={"ref": ref, "name": "Trip Booked", "properties": {"destination": "Lisbon"}},
        )

        assert response.status_code == 202, response.text
        [envelope] = await read_log(kafka_settings, "rapport.partner.event.contributed.v1", 1)
        assert envelope.id == response.json()["event_id"]
        assert envelope.data.customer_id == "c-1"
        assert envelope.data.model_dump(include={"partner_id", "name", "properties"}) == {
            "partner_id": partner.id,
            "name": "Trip Booked",
            "properties": {"destination": "Lisbon"},
        }

    async def test_unknown_refs_are_404_and_bad_events_422_and_nothing_is_published(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["segments"])
        cases = [
            ({"ref": "0" * 32, "name": "Trip Booked"}, 404),
            ({"ref": ref, "name": ""}, 422),
            ({"ref": ref, "name": "<script>"}, 422),
            ({"ref": ref, "name": "Big", "properties": {"blob": "x" * 9000}}, 422),
            ({"ref": ref, "name": "Naive", "occurred_at": "2025-01-01T10:00:00"}, 422),
            ({"ref": ref, "name": "Future", "occurred_at": "2150-01-01T10:00:00Z"}, 400),
            ({"ref": ref, "name": "Old", "occurred_at": "2001-01-01T10:00:00Z"}, 400),
            ({"ref": ref, "name": "Extra", "customer_id": "c-1"}, 422),
        ]
        for body, expected in cases:
            response = await client.post("/partner/v1/events", headers=partner.headers, json=body)
            assert response.status_code == expected, (body, response.text)

        assert app.state.runtime.relay is None or (await app.state.runtime.relay.backlog())[0] == 0
        stored = await everything_stored(app)
        assert "partner.event.contributed" not in stored


class TestAuditLedger:
    async def test_every_disclosure_is_in_the_ledger_and_on_the_log(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
        kafka_settings: KafkaSettings,
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "loyalty"], version=7)

        read = await _get(client, partner, ref, **{"X-Request-ID": "req-42"})
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
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        await _get(client, partner, ref)

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
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        for _ in range(3):
            await _get(client, partner, ref)

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
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        await _get(client, partner, ref)

        for statement in (
            "UPDATE partner_share_disclosures SET purpose = 'other'",
            "DELETE FROM partner_share_disclosures",
        ):
            with pytest.raises(Exception, match="append-only"):
                async with app.state.runtime.engine.begin() as connection:
                    await connection.execute(text(statement))

        [entry] = (await client.get("/disclosures", headers=AUTH)).json()["disclosures"]
        assert entry["purpose"] == "cross_selling"


class TestDeletionNotices:
    async def test_a_revocation_sends_a_signed_webhook_whose_2xx_is_the_acknowledgement(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        profile_stub: ProfileStub,
        webhook: WebhookReceiver,
    ) -> None:
        webhook.statuses = [500]  # the first try fails and is retried
        partner = await register_partner(client, webhook_url=webhook.url)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "segments"])

        await apply(app, revoked("c-1", partner.id, ["contact"]))

        async def acknowledged() -> bool:
            notices = await client.get(f"/notifications?partner_id={partner.id}", headers=AUTH)
            return notices.json()["notifications"][0]["acknowledged_at"] is not None

        await until(acknowledged, timeout=15.0, what="the webhook's acknowledgement")
        first, second = webhook.calls
        assert first.body == second.body
        signature = second.headers["x-rapport-signature"]
        assert signature_matches(partner.webhook_secret, second.body, signature)
        assert not signature_matches("whsec_other", second.body, signature)
        payload = __import__("json").loads(second.body)
        assert payload["type"] == "consent.revoked"
        assert payload["ref"] == ref
        assert (payload["delete_slices"], payload["remaining_slices"]) == (
            ["contact"],
            ["segments"],
        )
        assert second.headers["x-rapport-notification-id"] == payload["id"]
        [notice] = (
            await client.get(f"/notifications?partner_id={partner.id}", headers=AUTH)
        ).json()["notifications"]
        assert (notice["attempts"], notice["last_status"], notice["acknowledged_via"]) == (
            2,
            200,
            "webhook",
        )

    async def test_a_partner_without_webhook_reads_and_acknowledges_notices_by_api(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        other = await register_partner(client)
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])
        await apply(app, revoked("c-1", partner.id))

        [notice] = (await client.get("/partner/v1/notifications", headers=partner.headers)).json()[
            "notifications"
        ]
        foreign = await client.post(
            "/partner/v1/acknowledgements",
            headers=other.headers,
            json={"notification_id": notice["id"]},
        )
        acked = await client.post(
            "/partner/v1/acknowledgements",
            headers=partner.headers,
            json={"notification_id": notice["id"]},
        )
        pending = await client.get("/partner/v1/notifications", headers=partner.headers)

        assert notice["ref"] == ref and notice["payload"]["delete_slices"] == ["contact"]
        assert foreign.status_code == 404
        assert acked.status_code == 200
        assert acked.json()["acknowledged_via"] == "api"
        assert pending.json() == {"notifications": []}


class TestErasure:
    async def test_erasure_leaves_nothing_but_a_tombstone_and_tells_the_partner(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1")
        await apply(
            app,
            CustomerRegistered(
                customer_id="c-1", email="c-1@example.com", first_name="A", last_name="L"
            ),
        )
        ref = await share(app, client, "c-1", partner.id, ["contact", "loyalty"])
        await _get(client, partner, ref)

        await apply(app, CustomerErased(customer_id="c-1"))
        await apply(app, granted("c-1", partner.id, ["contact"], version=9))  # too late

        export = (await client.get("/customers/c-1/export", headers=AUTH)).json()
        assert export["service"] == "partner-share" and export["customer_id"] == "c-1"
        tombstones = export["records"].pop("erasure_tombstones")
        assert all(rows == [] for rows in export["records"].values()), export["records"]
        assert [t["customer_id"] for t in tombstones] == ["c-1"]
        assert (await _get(client, partner, ref)).status_code == 404
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
        _customers(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "purchase_summary"])
        await _get(client, partner, ref)
        await apply(app, revoked("c-1", partner.id, ["purchase_summary"]))

        records = (await client.get("/customers/c-1/export", headers=AUTH)).json()["records"]

        assert [c["ref"] for c in records["consents"]] == [ref]
        assert records["shared_slices"][0]["data"]["email"] == "c-1@example.com"
        assert {k["kind"] for k in records["match_keys"]} == {"email", "phone"}
        assert len(records["disclosures"]) == 1
        assert records["notifications"][0]["payload"]["delete_slices"] == ["purchase_summary"]


class TestKeepingSlicesCurrent:
    async def test_profile_changes_orders_and_merges_reach_the_shared_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        _customers(profile_stub, "c-1", "c-old")
        profile_stub.metrics["c-1"] = {"orders_count": 4, "revenue": "120.50", "currency": "EUR"}
        ref = await share(app, client, "c-1", partner.id, ["contact", "purchase_summary"])
        old_ref = await share(app, client, "c-old", partner.id, ["segments"])

        await apply(app, CustomerUpdated(customer_id="c-1", changes={"email": "new@example.com"}))
        order = OrderCompleted(
            customer_id="c-1",
            order_id="o-9",
            items=[{"product_id": "p", "price": "10"}],  # type: ignore[list-item]
            revenue="10.00",  # type: ignore[arg-type]
        )
        await apply(app, order)
        await apply(app, order)  # the same order again, under another event id
        await apply(
            app, CustomerMerged(customer_id="c-1", merged_customer_id="c-old", reason="email")
        )

        shown = (await _get(client, partner, ref)).json()["slices"]
        assert shown["contact"]["email"] == "new@example.com"
        assert shown["purchase_summary"]["orders_count"] == 5
        assert shown["purchase_summary"]["revenue"] == {"EUR": "130.50"}
        assert (await _get(client, partner, old_ref)).status_code == 404
        matched = await client.post(
            "/partner/v1/match",
            headers=partner.headers,
            json={"emails": [email_digest("new@example.com"), email_digest("c-1@example.com")]},
        )
        assert [(m["hash"], m["ref"]) for m in matched.json()["matches"]] == [
            (email_digest("new@example.com"), ref)
        ]
