"""Accounts and their contacts over HTTP: explicit links and Segment group calls."""

import httpx
from fastapi import FastAPI
from sales_testing import AUTH, apply, outbox_events, person

from rapport_events.types import AccountContactLinked, AccountCreated, AccountJoined


class TestAccounts:
    async def test_an_account_is_created_listed_changed_and_published(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        created = await client.post(
            "/accounts",
            json={
                "name": "Acme Coffee",
                "domain": "ACME.example",
                "industry": "hospitality",
                "size": "51-200",
                "owner": "rep:grace",
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        account = created.json()
        changed = await client.patch(
            f"/accounts/{account['id']}", json={"owner": "rep:linus"}, headers=AUTH
        )
        listed = await client.get("/accounts", params={"q": "acme"}, headers=AUTH)
        by_owner = await client.get("/accounts", params={"owner": "rep:grace"}, headers=AUTH)

        assert account["domain"] == "acme.example" and account["contacts"] == []
        assert changed.json()["owner"] == "rep:linus" and changed.json()["name"] == "Acme Coffee"
        assert [a["id"] for a in listed.json()["items"]] == [account["id"]]
        assert by_owner.json()["items"] == []
        [event] = await outbox_events(app)
        assert isinstance(event, AccountCreated)
        assert (event.account_id, event.customer_id) == (account["id"], f"account:{account['id']}")

    async def test_listing_pages_with_a_cursor(self, client: httpx.AsyncClient) -> None:
        for n in range(5):
            await client.post("/accounts", json={"name": f"Company {n}"}, headers=AUTH)

        first = (await client.get("/accounts?limit=2", headers=AUTH)).json()
        second = (
            await client.get(f"/accounts?limit=2&cursor={first['next_cursor']}", headers=AUTH)
        ).json()
        third = (
            await client.get(f"/accounts?limit=2&cursor={second['next_cursor']}", headers=AUTH)
        ).json()
        bad = await client.get("/accounts?cursor=not-a-cursor", headers=AUTH)

        names = [a["name"] for page in (first, second, third) for a in page["items"]]
        assert names == [f"Company {n}" for n in (4, 3, 2, 1, 0)]
        assert third["next_cursor"] is None
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"

    async def test_bad_input_is_refused_and_nothing_is_stored(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        replies = [
            await client.post("/accounts", json={"name": ""}, headers=AUTH),
            await client.post(
                "/accounts", json={"name": "X", "domain": "not a host"}, headers=AUTH
            ),
            await client.post("/accounts", json={"name": "X", "size": "huge"}, headers=AUTH),
            await client.post("/accounts", json={"name": "X\u0000"}, headers=AUTH),
            await client.post("/accounts", json={"name": "X"}),
            await client.get("/accounts/nope", headers=AUTH),
        ]

        assert [r.status_code for r in replies] == [422, 422, 422, 422, 401, 404]
        assert all("message" in r.json() for r in replies)
        assert (await client.get("/accounts", headers=AUTH)).json()["items"] == []
        assert await outbox_events(app) == []


class TestContacts:
    async def test_a_known_customer_is_linked_with_a_role_and_unlinked(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person(email="Ada@Acme.example")
        await apply(app, ada)
        account = (await client.post("/accounts", json={"name": "Acme"}, headers=AUTH)).json()

        linked = await client.put(
            f"/accounts/{account['id']}/contacts/{ada.customer_id}",
            json={"role": "buyer"},
            headers=AUTH,
        )
        unknown = await client.put(f"/accounts/{account['id']}/contacts/nobody", headers=AUTH)
        [contact] = linked.json()["contacts"]
        removed = await client.delete(
            f"/accounts/{account['id']}/contacts/{ada.customer_id}", headers=AUTH
        )
        again = await client.delete(
            f"/accounts/{account['id']}/contacts/{ada.customer_id}", headers=AUTH
        )

        assert linked.status_code == 200, linked.text
        assert (contact["customer_id"], contact["role"], contact["email"]) == (
            ada.customer_id,
            "buyer",
            "ada@acme.example",
        )
        assert unknown.status_code == 404 and "nobody" in unknown.json()["message"]
        assert (removed.status_code, again.status_code) == (204, 404)
        events = await outbox_events(app)
        assert [type(e) for e in events] == [AccountCreated, AccountContactLinked]
        assert events[1].customer_id == ada.customer_id

    async def test_group_calls_create_the_account_once_and_link_each_caller(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada, bob = person(), person(first_name="Bob")
        await apply(
            app,
            ada,
            bob,
            AccountJoined(
                customer_id=ada.customer_id,
                account_id="acme",
                name="Acme",
                traits={"industry": "retail", "website": "https://acme.example/about"},
            ),
            AccountJoined(customer_id=bob.customer_id, account_id="acme", traits={"plan": 2}),
            AccountJoined(customer_id=bob.customer_id, account_id="acme", traits={"plan": 3}),
        )

        [account] = (await client.get("/accounts", headers=AUTH)).json()["items"]
        full = (await client.get(f"/accounts/{account['id']}", headers=AUTH)).json()

        assert (account["external_id"], account["name"]) == ("acme", "Acme")
        assert (account["industry"], account["domain"]) == ("retail", "acme.example")
        assert account["traits"]["plan"] == 3
        assert sorted(c["customer_id"] for c in full["contacts"]) == sorted(
            [ada.customer_id, bob.customer_id]
        )
        assert {c["source"] for c in full["contacts"]} == {"group"}
