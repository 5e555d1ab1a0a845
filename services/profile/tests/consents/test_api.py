"""Consents over HTTP: each change versioned in the receipt and published, with the real
lifespan, a real broker and a real database."""

import httpx
from fastapi import FastAPI
from profile_testing import AUTH, create, outbox, row_counts

from rapport_events.codec import decode


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
