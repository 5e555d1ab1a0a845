"""The customer overview over HTTP: the same parts the customer's own routes answer, in one
answer, with the real lifespan and a real database."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import AUTH, DAY, create, deliver, order


async def customer_with_orders(app: FastAPI, client: httpx.AsyncClient) -> str:
    customer: str = (await create(client))["id"]
    consent = {"purpose": "marketing", "channel": "email", "granted": True}
    granted = await client.put(f"/customers/{customer}/consents", json=consent, headers=AUTH)
    assert granted.status_code == 200, granted.text
    for n in range(3):
        at = DAY + timedelta(days=40 * n)
        await deliver(app.state.runtime.sessions, order(customer, f"o-{n}", "40.00", at))
    return customer


async def overview_equal_to_its_parts(
    client: httpx.AsyncClient, customer: str, timeline: dict[str, Any]
) -> dict[str, Any]:
    """The overview of `customer`, checked part by part against the customer's own routes."""
    overview = await client.get(f"/customers/{customer}/overview", params=timeline, headers=AUTH)
    parts = {
        "customer": await client.get(f"/customers/{customer}", headers=AUTH),
        "consents": await client.get(f"/customers/{customer}/consents", headers=AUTH),
        "metrics": await client.get(f"/customers/{customer}/metrics", headers=AUTH),
        "timeline": await client.get(
            f"/customers/{customer}/timeline", params=timeline, headers=AUTH
        ),
    }
    assert overview.status_code == 200, overview.text
    body: dict[str, Any] = overview.json()
    for name, reply in parts.items():
        assert reply.status_code == 200 and body[name] == reply.json(), name
    return body


class TestOverview:
    async def test_each_part_is_what_its_own_route_answers(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        customer = await customer_with_orders(app, client)
        timeline = {"type": "order.completed", "limit": 2}

        body = await overview_equal_to_its_parts(client, customer, timeline)

        assert body["spend"] == [
            {"month": "2026-03", "orders": 1, "revenue": "40.00"},
            {"month": "2026-04", "orders": 1, "revenue": "40.00"},
            {"month": "2026-05", "orders": 1, "revenue": "40.00"},
        ]

    async def test_a_merged_customer_shows_themselves_with_the_survivors_value_and_timeline(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        survivor = await customer_with_orders(app, client)
        duplicate: str = (
            await create(client, email="ada.two@example.com", phone="+14155550199", external_ids={})
        )["id"]
        merged = await client.post(
            f"/customers/{survivor}/merge",
            json={"merged_customer_id": duplicate},
            headers=AUTH,
        )
        assert merged.status_code == 200, merged.text

        body = await overview_equal_to_its_parts(client, duplicate, {"limit": 5})

        assert (body["customer"]["id"], body["customer"]["merged_into"]) == (duplicate, survivor)
        assert body["metrics"]["customer_id"] == survivor
        assert body["metrics"]["orders"] == 3
        assert body["timeline"]["customer_id"] == survivor
        assert len(body["spend"]) == 3

    async def test_an_unknown_customer_is_404(self, client: httpx.AsyncClient) -> None:
        reply = await client.get("/customers/nobody/overview", headers=AUTH)

        assert reply.status_code == 404 and reply.json()["error"] == "not_found"

    @pytest.mark.parametrize("limit", [0, 501])
    async def test_a_timeline_limit_out_of_range_is_422(
        self, client: httpx.AsyncClient, limit: int
    ) -> None:
        reply = await client.get("/customers/c-1/overview", params={"limit": limit}, headers=AUTH)

        assert reply.status_code == 422

    async def test_it_needs_the_token(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/customers/c-1/overview")).status_code == 401
