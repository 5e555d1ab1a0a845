"""What partners read over HTTP (a customer by ref, the changes feed, matches, overlap,
contributed events) and how the shared slices stay current, with the real lifespan, a real
broker and a real database."""

import base64
import json

import httpx
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    apply,
    consent_of,
    everything_stored,
    granted,
    profile_knows,
    read_log,
    read_ref,
    register_partner,
    revoked,
    settings_for,
    share,
)

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox
from rapport_events.types import CustomerMerged, CustomerUpdated, OrderCompleted, SegmentEntered
from rapport_partner_share.main import create_app
from rapport_partner_share.security import email_digest, phone_digest


class TestPartnerReadsACustomer:
    async def test_it_sees_exactly_the_consented_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact", "segments"])

        response = await read_ref(client, partner, ref)

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
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["demographics"])

        shown = (await read_ref(client, partner, ref)).json()["slices"]

        assert set(shown) == {"demographics"}
        assert shown["demographics"]["birth_year"] == 1985
        assert shown["demographics"]["age_band"] in {"35-44", "45-54"}
        assert shown["demographics"]["city"] == "London"
        assert "1985-12-10" not in str(shown)

    async def test_only_slices_the_partner_is_registered_for_are_kept(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client, slices=["segments"])
        profile_knows(profile_stub, "c-1")
        await apply(app, granted("c-1", partner.id, ["contact", "segments"]))
        consent = await consent_of(client, "c-1", partner.id)
        assert consent is not None

        response = await read_ref(client, partner, consent["ref"])

        assert set(response.json()["slices"]) == {"segments"}
        export = (await client.get("/customers/c-1/export", headers=AUTH)).json()
        assert [row["slice"] for row in export["records"]["shared_slices"]] == ["segments"]
        assert profile_stub.requests == []  # nothing was fetched for a slice it may not have

    async def test_unknown_revoked_and_other_partners_refs_are_the_same_404(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        mine = await register_partner(client)
        theirs = await register_partner(client)
        profile_knows(profile_stub, "c-1", "c-2")
        ref_revoked = await share(app, client, "c-1", mine.id, ["contact"])
        await apply(app, revoked("c-1", mine.id))
        their_ref = await share(app, client, "c-2", theirs.id, ["contact"])

        replies = [
            await read_ref(client, mine, ref) for ref in ("0" * 32, ref_revoked, their_ref, "c-2")
        ]

        assert [r.status_code for r in replies] == [404, 404, 404, 404]
        shapes = {(r.json()["error"], r.json()["message"].split(" ")[0]) for r in replies}
        assert shapes == {("not_found", "no")}
        assert (await read_ref(client, theirs, their_ref)).status_code == 200

    async def test_refs_differ_per_partner_and_stay_stable_across_regrants(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        first = await register_partner(client)
        second = await register_partner(client)
        profile_knows(profile_stub, "c-1")
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
        profile_knows(profile_stub, "c-1")
        ref = await share(app, client, "c-1", partner.id, ["contact"])

        response = await client.get(
            f"/partner/v1/customers/{ref}?purpose=resale", headers=partner.headers
        )

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        ledger = (await client.get("/disclosures", headers=AUTH)).json()["disclosures"]
        assert ledger == []


class TestChangesFeed:
    async def test_pages_through_customers_changed_since_a_time(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1", "c-2", "c-3")
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
        profile_knows(profile_stub, "c-1", "c-2", "c-3")
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
            profile_knows(profile_stub, *ids)
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
        profile_knows(profile_stub, "c-1")
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
        profile_knows(profile_stub, "c-1")
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


class TestKeepingSlicesCurrent:
    async def test_profile_changes_orders_and_merges_reach_the_shared_slices(
        self, client: httpx.AsyncClient, app: FastAPI, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client)
        profile_knows(profile_stub, "c-1", "c-old")
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

        shown = (await read_ref(client, partner, ref)).json()["slices"]
        assert shown["contact"]["email"] == "new@example.com"
        assert shown["purchase_summary"]["orders_count"] == 5
        assert shown["purchase_summary"]["revenue"] == {"EUR": "130.50"}
        assert (await read_ref(client, partner, old_ref)).status_code == 404
        matched = await client.post(
            "/partner/v1/match",
            headers=partner.headers,
            json={"emails": [email_digest("new@example.com"), email_digest("c-1@example.com")]},
        )
        assert [(m["hash"], m["ref"]) for m in matched.json()["matches"]] == [
            (email_digest("new@example.com"), ref)
        ]
