"""An identify that folds an anonymous visitor into a customer keeps the customer's consents.

Over HTTP with the real lifespan, a real broker and a real database: the customer grants
consents, browses anonymously, then identifies. The visitor made no choice, so nothing is
revoked and no consent.revoked (which partner-share turns into deletion notices) goes out.
"""

import httpx
from fastapi import FastAPI
from profile_testing import AUTH, BASIC
from sqlmodel import select

from rapport_events.codec import decode
from rapport_events.outbox import OutboxMessage, is_event


async def published_types(app: FastAPI, customer_id: str) -> list[str]:
    """The types of the events profile wrote about the customer, in order."""
    async with app.state.runtime.sessions() as session:
        rows = (
            await session.exec(select(OutboxMessage).where(is_event()).order_by(OutboxMessage.id))
        ).all()  # type: ignore[arg-type]
    envelopes = [decode(m.value, [(k, v.encode()) for k, v in m.headers]) for m in rows]
    return [e.type for e in envelopes if e.subject == customer_id]


class TestIdentifyAfterAnonymousBrowsing:
    async def test_keeps_the_consents_and_revokes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        created = await client.post(
            "/customers",
            json={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
            headers=AUTH,
        )
        ada = created.json()["id"]
        consents = f"/customers/{ada}/consents"
        for body in (
            {"purpose": "marketing", "channel": "email", "granted": True},
            {
                "purpose": "partner_sharing",
                "partner_id": "p-1",
                "slices": ["contact", "loyalty"],
                "granted": True,
            },
        ):
            assert (await client.put(consents, json=body, headers=AUTH)).status_code == 200
        page = await client.post(
            "/v1/page", json={"anonymousId": "visitor-1", "name": "Home"}, headers=BASIC
        )
        identify = await client.post(
            "/v1/identify", json={"anonymousId": "visitor-1", "userId": ada}, headers=BASIC
        )

        assert (created.status_code, page.status_code, identify.status_code) == (201, 200, 200)
        receipt = (await client.get(consents, headers=AUTH)).json()
        state = {(c["purpose"], c["channel"], c["partner_id"]): c for c in receipt["consents"]}
        assert state[("marketing", "email", None)]["granted"] is True
        sharing = state[("partner_sharing", None, "p-1")]
        assert (sharing["granted"], sharing["slices"]) == (True, ["contact", "loyalty"])
        assert [h["source"] for h in receipt["history"]] == ["api", "api"]
        types = await published_types(app, ada)
        assert "rapport.customer.merged.v1" in types  # the visitor was folded in
        assert "rapport.consent.revoked.v1" not in types
