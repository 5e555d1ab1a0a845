"""Deletion notices over HTTP: signed webhooks and the partners' own reads and
acknowledgements, with the real lifespan, a real broker and a real database."""

import httpx
from fastapi import FastAPI
from partner_share_testing import (
    AUTH,
    ProfileStub,
    WebhookReceiver,
    apply,
    profile_knows,
    register_partner,
    revoked,
    share,
)

from rapport_events.testing.harness import until
from rapport_events.webhooks import verify as signature_matches


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
        profile_knows(profile_stub, "c-1")
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
        profile_knows(profile_stub, "c-1")
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
