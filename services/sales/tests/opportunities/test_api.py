"""Opportunities through a pipeline: stage changes are events, a won deal records an order,
and every refusal is a clear 4xx that stores nothing."""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sales_testing import AUTH, apply, outbox_events, person

from rapport_events.base import utcnow
from rapport_events.types import (
    CampaignMessageClicked,
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    OrderCompleted,
)


async def an_account(client: httpx.AsyncClient, name: str = "Acme", **fields: Any) -> str:
    reply = await client.post("/accounts", json={"name": name, **fields}, headers=AUTH)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def an_opportunity(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    reply = await client.post("/opportunities", json=fields, headers=AUTH)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


class TestOpportunityLifecycle:
    async def test_a_deal_moves_through_stages_and_is_won_with_an_order(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person()
        await apply(app, ada)
        account = await an_account(client, owner="rep:grace")
        close = (utcnow() + timedelta(days=30)).date()
        deal = await an_opportunity(
            client,
            account_id=account,
            name="20 espresso machines",
            amount="12000.00",
            expected_close_date=close.isoformat(),
            customer_id=ada.customer_id,
            products=[
                {"product_id": "sku-x2", "name": "Barista X2", "price": "600", "quantity": 20}
            ],
        )
        moved = await client.patch(
            f"/opportunities/{deal['id']}", json={"stage": "proposal"}, headers=AUTH
        )
        won = await client.post(f"/opportunities/{deal['id']}/win", headers=AUTH)
        again = await client.post(f"/opportunities/{deal['id']}/win", headers=AUTH)
        late_change = await client.patch(
            f"/opportunities/{deal['id']}", json={"amount": "1"}, headers=AUTH
        )

        assert (deal["stage"], deal["probability"], deal["owner"]) == (
            "lead",
            "0.1000",
            "rep:grace",
        )
        assert (moved.json()["stage"], moved.json()["probability"]) == ("proposal", "0.5000")
        assert won.status_code == 200, won.text
        body = won.json()
        assert (body["status"], body["stage"], body["order_id"]) == (
            "won",
            "won",
            f"sales-{deal['id']}",
        )
        assert [(h["from_stage"], h["to_stage"]) for h in body["history"]] == [
            (None, "lead"),
            ("lead", "proposal"),
            ("proposal", "won"),
        ]
        assert (again.status_code, late_change.status_code) == (409, 409)
        events = await outbox_events(app)
        kinds = [type(e) for e in events]
        assert kinds[1:] == [
            OpportunityCreated,
            OpportunityStageChanged,
            OpportunityStageChanged,
            OrderCompleted,
            OpportunityWon,
        ]
        order = events[4]
        assert isinstance(order, OrderCompleted)
        assert (order.customer_id, order.order_id, order.revenue) == (
            ada.customer_id,
            f"sales-{deal['id']}",
            Decimal("12000.00"),
        )
        assert [(i.product_id, i.quantity) for i in order.items] == [("sku-x2", 20)]
        assert all(e.customer_id == ada.customer_id for e in events[1:])

    async def test_a_lost_deal_keeps_its_reason(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        account = await an_account(client)
        deal = await an_opportunity(client, account_id=account, name="Small", amount="800")

        no_reason = await client.post(f"/opportunities/{deal['id']}/lose", json={}, headers=AUTH)
        lost = await client.post(
            f"/opportunities/{deal['id']}/lose", json={"reason": "price"}, headers=AUTH
        )
        # Without a primary contact there is nobody to record an order for.
        other = await an_opportunity(client, account_id=account, name="Other", amount="5")
        orderless = await client.post(f"/opportunities/{other['id']}/win", headers=AUTH)
        won_alone = await client.post(
            f"/opportunities/{other['id']}/win", json={"record_order": False}, headers=AUTH
        )

        assert no_reason.status_code == 422
        assert (lost.json()["status"], lost.json()["lost_reason"]) == ("lost", "price")
        assert orderless.status_code == 422 and "primary contact" in orderless.json()["message"]
        assert won_alone.json()["order_id"] is None
        events = await outbox_events(app)
        [lost_event] = [e for e in events if isinstance(e, OpportunityLost)]
        assert (lost_event.reason, lost_event.customer_id) == ("price", f"account:{account}")
        assert not any(isinstance(e, OrderCompleted) for e in events)

    async def test_the_source_is_the_contact_s_campaign_or_channel(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        clicked, organic = (
            person(acquisition_channel="paid_search"),
            person(acquisition_channel="organic"),
        )
        click = CampaignMessageClicked(
            customer_id=clicked.customer_id,
            campaign_id="cmp-spring",
            message_id="m-1",
            channel="email",
            url="https://shop.example/",
        )
        await apply(app, clicked, organic, click)
        account = await an_account(client)

        from_click = await an_opportunity(
            client, account_id=account, name="A", amount="1", customer_id=clicked.customer_id
        )
        from_channel = await an_opportunity(
            client, account_id=account, name="B", amount="1", customer_id=organic.customer_id
        )
        given = await an_opportunity(
            client,
            account_id=account,
            name="C",
            amount="1",
            customer_id=organic.customer_id,
            source="trade-show",
        )
        contacts = (await client.get(f"/accounts/{account}", headers=AUTH)).json()["contacts"]

        assert from_click["source"] == "campaign:cmp-spring"
        assert from_channel["source"] == "channel:organic"
        assert given["source"] == "trade-show"
        assert {c["customer_id"] for c in contacts} == {clicked.customer_id, organic.customer_id}


class TestRefusals:
    async def test_bad_opportunities_get_a_4xx_and_store_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        account = await an_account(client)
        before = len(await outbox_events(app))
        yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
        good = {"account_id": account, "name": "Deal", "amount": "10"}
        replies = {
            "unknown stage": await client.post(
                "/opportunities", json={**good, "stage": "dreaming"}, headers=AUTH
            ),
            "closed stage": await client.post(
                "/opportunities", json={**good, "stage": "won"}, headers=AUTH
            ),
            "negative amount": await client.post(
                "/opportunities", json={**good, "amount": "-1"}, headers=AUTH
            ),
            "close before creation": await client.post(
                "/opportunities", json={**good, "expected_close_date": yesterday}, headers=AUTH
            ),
            "unknown account": await client.post(
                "/opportunities", json={**good, "account_id": "nope"}, headers=AUTH
            ),
            "unknown customer": await client.post(
                "/opportunities", json={**good, "customer_id": "nobody"}, headers=AUTH
            ),
            "bad currency": await client.post(
                "/opportunities", json={**good, "currency": "euro"}, headers=AUTH
            ),
            "unknown pipeline": await client.post(
                "/opportunities", json={**good, "pipeline_id": "nope"}, headers=AUTH
            ),
        }

        assert {name: r.status_code for name, r in replies.items()} == {
            "unknown stage": 422,
            "closed stage": 422,
            "negative amount": 422,
            "close before creation": 422,
            "unknown account": 404,
            "unknown customer": 422,
            "bad currency": 422,
            "unknown pipeline": 404,
        }
        assert "dreaming" in replies["unknown stage"].json()["message"]
        listed = await client.get("/opportunities", headers=AUTH)
        assert listed.json()["items"] == []
        assert len(await outbox_events(app)) == before

    async def test_a_stage_change_to_an_unknown_or_closing_stage_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        account = await an_account(client)
        deal = await an_opportunity(client, account_id=account, name="D", amount="1")

        unknown = await client.patch(
            f"/opportunities/{deal['id']}", json={"stage": "nowhere"}, headers=AUTH
        )
        closing = await client.patch(
            f"/opportunities/{deal['id']}", json={"stage": "won"}, headers=AUTH
        )
        early = await client.patch(
            f"/opportunities/{deal['id']}",
            json={"expected_close_date": (date.today() - timedelta(days=3)).isoformat()},
            headers=AUTH,
        )
        after = (await client.get(f"/opportunities/{deal['id']}", headers=AUTH)).json()

        assert (unknown.status_code, closing.status_code, early.status_code) == (422, 422, 422)
        assert (after["stage"], after["status"], after["expected_close_date"]) == (
            "lead",
            "open",
            None,
        )


class TestPipelines:
    async def test_a_custom_pipeline_orders_its_stages(self, client: httpx.AsyncClient) -> None:
        stages = [
            {"key": "intro", "name": "Intro", "probability": "0.2"},
            {"key": "trial", "name": "Trial", "probability": "0.6"},
            {"key": "signed", "name": "Signed", "probability": "1", "outcome": "won"},
            {"key": "gone", "name": "Gone", "probability": "0", "outcome": "lost"},
        ]
        created = await client.post(
            "/pipelines", json={"name": "SaaS", "stages": stages}, headers=AUTH
        )
        twice = await client.post(
            "/pipelines", json={"name": "SaaS", "stages": stages}, headers=AUTH
        )
        no_won = await client.post(
            "/pipelines",
            json={"name": "Bad", "stages": [s for s in stages if s["key"] != "signed"]},
            headers=AUTH,
        )
        bad_probability = await client.post(
            "/pipelines",
            json={"name": "Bad", "stages": [{**stages[0], "probability": "1.5"}, *stages[1:]]},
            headers=AUTH,
        )
        listed = (await client.get("/pipelines", headers=AUTH)).json()

        assert created.status_code == 201, created.text
        assert [s["key"] for s in created.json()["stages"]] == ["intro", "trial", "signed", "gone"]
        assert (twice.status_code, no_won.status_code, bad_probability.status_code) == (
            409,
            422,
            422,
        )
        assert sorted(p["name"] for p in listed) == ["Default", "SaaS"]
        account = await an_account(client)
        deal = await an_opportunity(
            client, account_id=account, name="S", amount="9", pipeline_id=created.json()["id"]
        )
        assert (deal["stage"], deal["probability"]) == ("intro", "0.2000")
