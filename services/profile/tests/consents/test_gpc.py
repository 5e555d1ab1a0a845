"""Global Privacy Control on tracking calls, over HTTP with the real lifespan, a real broker
and a real database: the signal is recorded once as the person's refusal of sale and
sharing, with its source on the receipt, and holds when an anonymous visitor identifies.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from profile_testing import AUTH, BASIC
from sqlalchemy import event
from sqlmodel import select

from rapport_events.codec import decode
from rapport_events.outbox import OutboxMessage, is_event

GPC = {**BASIC, "Sec-GPC": "1"}
REVOKED = "rapport.consent.revoked.v1"


async def customer(client: httpx.AsyncClient, *partners: str) -> str:
    """A new customer who granted sharing with each of `partners`."""
    created = await client.post(
        "/customers",
        json={"email": f"{uuid.uuid4().hex[:10]}@example.com", "first_name": "A", "last_name": "B"},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    customer_id: str = created.json()["id"]
    for partner in partners:
        await grant(client, customer_id, partner)
    return customer_id


async def grant(client: httpx.AsyncClient, customer_id: str, partner: str) -> None:
    body = {
        "purpose": "partner_sharing",
        "partner_id": partner,
        "slices": ["contact"],
        "granted": True,
    }
    given = await client.put(f"/customers/{customer_id}/consents", json=body, headers=AUTH)
    assert given.status_code == 200, given.text


async def receipt(client: httpx.AsyncClient, customer_id: str) -> dict[str, Any]:
    reply = await client.get(f"/customers/{customer_id}/consents", headers=AUTH)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def sharing(body: dict[str, Any]) -> dict[str | None, bool]:
    """Partner (None: every partner) -> granted, from a receipt."""
    return {
        c["partner_id"]: c["granted"] for c in body["consents"] if c["purpose"] == "partner_sharing"
    }


async def published(app: FastAPI, customer_id: str) -> list[tuple[str, Any]]:
    """The type and data of the events profile wrote about the customer, in order."""
    async with app.state.runtime.sessions() as session:
        rows = (
            await session.exec(select(OutboxMessage).where(is_event()).order_by(OutboxMessage.id))
        ).all()  # type: ignore[arg-type]
    envelopes = [decode(m.value, [(k, v.encode()) for k, v in m.headers]) for m in rows]
    return [(e.type, e.data) for e in envelopes if e.subject == customer_id]


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app runs inside the block."""
    seen: list[str] = []
    engine = app.state.runtime.engine.sync_engine

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


class TestSecGpcOnATrackingCall:
    async def test_refuses_every_partner_once_with_the_source_on_the_receipt(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await customer(client, "p-1", "p-2")
        first = await client.post(
            "/v1/t", json={"userId": ada, "event": "Viewed", "messageId": "m-1"}, headers=GPC
        )
        again = await client.post(
            "/v1/p", json={"userId": ada, "name": "Home", "messageId": "m-2"}, headers=GPC
        )

        assert (first.status_code, again.status_code) == (200, 200)
        body = await receipt(client, ada)
        assert sharing(body) == {None: False, "p-1": False, "p-2": False}
        refusals = [h for h in body["history"] if h["source"] == "gpc_header"]
        assert [(h["partner_id"], h["granted"], h["actor"]) for h in refusals] == [
            (None, False, "tracking"),
            ("p-1", False, "tracking"),
            ("p-2", False, "tracking"),
        ]  # once, though two calls carried the signal
        revoked = [data.partner_id for kind, data in await published(app, ada) if kind == REVOKED]
        assert revoked == [None, "p-1", "p-2"]

    async def test_a_grant_after_the_refusal_holds_against_later_calls(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await customer(client, "p-1")
        await client.post("/v1/t", json={"userId": ada, "event": "Viewed"}, headers=GPC)
        await grant(client, ada, "p-1")
        later = await client.post("/v1/t", json={"userId": ada, "event": "Viewed"}, headers=GPC)

        assert later.status_code == 200
        assert sharing(await receipt(client, ada)) == {None: False, "p-1": True}

    async def test_a_call_without_the_signal_changes_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await customer(client, "p-1")
        plain = await client.post(
            "/v1/t", json={"userId": ada, "event": "Viewed"}, headers={**BASIC, "Sec-GPC": "0"}
        )

        assert plain.status_code == 200
        assert sharing(await receipt(client, ada)) == {"p-1": True}
        assert REVOKED not in [kind for kind, _ in await published(app, ada)]


class TestSignalsInABatch:
    async def test_context_gpc_and_refused_categories_record_each_person_once(
        self, client: httpx.AsyncClient
    ) -> None:
        ada, bob, cy = [await customer(client, "p-1") for _ in range(3)]
        batch = [
            *({"type": "track", "userId": ada, "event": "E", "context": {"gpc": True}},) * 3,
            {
                "type": "page",
                "userId": bob,
                "context": {"consent": {"categoryPreferences": {"DataSharing": False}}},
            },
            {
                "type": "page",
                "userId": cy,
                "context": {"consent": {"categoryPreferences": {"DataSharing": True}}},
            },
        ]
        sent = await client.post("/v1/batch", json={"batch": batch}, headers=BASIC)

        assert sent.status_code == 200, sent.text
        sources = {}
        for person in (ada, bob, cy):
            body = await receipt(client, person)
            sources[person] = [h["source"] for h in body["history"] if h["source"] != "api"]
        assert sources == {
            ada: ["gpc_context", "gpc_context"],
            bob: ["consent_categories", "consent_categories"],
            cy: [],
        }

    async def test_an_unchanged_batch_reads_the_consents_with_one_statement(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        people = [await customer(client) for _ in range(5)]
        calls = [
            {"type": "track", "userId": p, "event": f"E{n}"} for n in range(10) for p in people
        ]
        await client.post("/v1/b", json={"batch": calls[:5]}, headers=GPC)

        with statements(app) as seen:
            again = await client.post("/v1/b", json={"batch": calls}, headers=GPC)

        assert again.status_code == 200
        reads = [sql for sql in seen if "FROM profile_consents" in sql]
        writes = [sql for sql in seen if "INTO profile_consent" in sql]
        assert (len(reads), writes) == (1, [])  # fifty calls, five people, nothing new
        for person in people:
            assert sharing(await receipt(client, person)) == {None: False}


class TestAnAnonymousVisitorWithGpc:
    async def test_the_refusal_holds_on_the_customer_they_become(
        self, client: httpx.AsyncClient
    ) -> None:
        visit = await client.post(
            "/v1/page", json={"anonymousId": "visitor-gpc-1", "name": "Home"}, headers=GPC
        )
        who = await client.post(
            "/v1/identify",
            json={
                "anonymousId": "visitor-gpc-1",
                "userId": "shop-user-1",
                "traits": {"email": "new-gpc@example.com", "firstName": "Nia"},
            },
            headers=BASIC,
        )

        assert (visit.status_code, who.status_code) == (200, 200)
        found = await client.get(
            "/customers", params={"email": "new-gpc@example.com"}, headers=AUTH
        )
        [nia] = found.json()["items"]
        body = await receipt(client, nia["id"])
        assert sharing(body) == {None: False}
        assert [h["source"] for h in body["history"]] == ["gpc_header"]

    async def test_it_revokes_the_grants_of_the_customer_they_turn_out_to_be(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = await customer(client, "p-1")
        await client.post(
            "/v1/page", json={"anonymousId": "visitor-gpc-2", "name": "Home"}, headers=GPC
        )
        who = await client.post(
            "/v1/identify", json={"anonymousId": "visitor-gpc-2", "userId": ada}, headers=BASIC
        )

        assert who.status_code == 200
        body = await receipt(client, ada)
        assert sharing(body) == {None: False, "p-1": False}
        sources = {h["partner_id"]: h["source"] for h in body["history"]}
        # The refusal keeps where it came from; the grant it ends is a merge's change, so
        # partner-share stops sharing without a deletion notice for it (consents.py).
        assert sources == {None: "gpc_header", "p-1": "merge"}

    async def test_the_refusal_follows_an_alias_before_they_identify(
        self, client: httpx.AsyncClient
    ) -> None:
        await client.post(
            "/v1/page", json={"anonymousId": "visitor-gpc-3", "name": "Home"}, headers=GPC
        )
        aliased = await client.post(
            "/v1/alias",
            json={"previousId": "visitor-gpc-3", "userId": "shop-user-3"},
            headers=BASIC,
        )
        who = await client.post(
            "/v1/identify",
            json={"userId": "shop-user-3", "traits": {"email": "alias-gpc@example.com"}},
            headers=BASIC,
        )

        assert (aliased.status_code, who.status_code) == (200, 200)
        found = await client.get(
            "/customers", params={"email": "alias-gpc@example.com"}, headers=AUTH
        )
        [customer_row] = found.json()["items"]
        body = await receipt(client, customer_row["id"])
        assert sharing(body) == {None: False}
        assert [h["source"] for h in body["history"]] == ["gpc_header"]
