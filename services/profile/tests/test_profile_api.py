"""Profile over HTTP as a whole, with its real lifespan, a real broker and a real database:
health, auth, and a customer's 360 view across the domains (orders, merges, metrics,
timeline and analytics)."""

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import ADA, AUTH, BASIC, create, row_counts

from rapport_events.testing.harness import poll_until, until_status


class TestHealth:
    async def test_healthz_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_turns_ready(self, client: httpx.AsyncClient) -> None:
        response = await until_status(lambda: client.get("/readyz"), timeout=10.0)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "tasks": "ok"}


class TestAuth:
    async def test_no_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/customers", json=ADA)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"

    async def test_a_wrong_token_is_401_and_stores_nothing(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/customers", json=ADA, headers={"Authorization": "Bearer nope"}
        )
        assert response.status_code == 401
        assert await row_counts(app) == (0, 0)


class TestTheCustomer360OverHttp:
    @pytest.mark.consumes
    async def test_orders_merge_unmerge_metrics_and_analytics_answer_over_http(
        self, client: httpx.AsyncClient
    ) -> None:
        ada = await create(client)
        dupe = await create(client, email="ada.l@example.com", external_ids={})
        calls = [
            {
                "type": "track",
                "userId": who,
                "event": "Order Completed",
                "messageId": f"m-{n}",
                "timestamp": f"2026-03-0{n + 2}T10:00:00Z",
                "properties": {"order_id": f"o-{n}", "revenue": 10 * (n + 1)},
            }
            for n, who in enumerate([ada["id"], dupe["id"], dupe["id"]])
        ]
        tracked = await client.post("/v1/batch", json={"batch": calls}, headers=BASIC)
        assert tracked.status_code == 200, tracked.text

        async def orders_of(customer_id: str, count: int) -> bool:
            metrics = await client.get(f"/customers/{customer_id}/metrics", headers=AUTH)
            return metrics.status_code == 200 and metrics.json()["orders"] == count

        assert await poll_until(lambda: orders_of(dupe["id"], 2))
        merged = await client.post(
            f"/customers/{ada['id']}/merge",
            json={"merged_customer_id": dupe["id"], "actor": "rep-1"},
            headers=AUTH,
        )
        after_merge = (await client.get(f"/customers/{ada['id']}/metrics", headers=AUTH)).json()
        dupe_view = (await client.get(f"/customers/{dupe['id']}", headers=AUTH)).json()
        timeline = (
            await client.get(
                f"/customers/{ada['id']}/timeline",
                params={"type": "order.completed"},
                headers=AUTH,
            )
        ).json()
        twice = await client.post(
            f"/customers/{ada['id']}/merge", json={"merged_customer_id": dupe["id"]}, headers=AUTH
        )
        unmerged = await client.post(
            f"/customers/{ada['id']}/unmerge",
            json={"merged_customer_id": dupe["id"]},
            headers=AUTH,
        )
        after_unmerge = (await client.get(f"/customers/{ada['id']}/metrics", headers=AUTH)).json()
        trends = await client.get(
            "/analytics/trends",
            params={
                "metric": "revenue",
                "by": "country",
                "interval": "month",
                "from": "2026-03-01",
                "to": "2026-03-31",
            },
            headers=AUTH,
        )
        tiers = await client.get("/analytics/tiers", headers=AUTH)
        forecast = await client.get(
            "/analytics/forecast", params={"from": "2026-03-01", "to": "2026-03-10"}, headers=AUTH
        )
        disclosures = await client.get(f"/customers/{ada['id']}/disclosures", headers=AUTH)
        bad_range = await client.get(
            "/analytics/trends", params={"from": "2026-04-01", "to": "2026-03-01"}, headers=AUTH
        )

        assert merged.status_code == 200, merged.text
        assert merged.json()["reason"] == "manual"
        assert (after_merge["orders"], after_merge["revenue"]) == (3, "60.00")
        assert (dupe_view["status"], dupe_view["merged_into"]) == ("merged", ada["id"])
        assert [i["data"]["order_id"] for i in timeline["items"]] == ["o-2", "o-1", "o-0"]
        assert twice.status_code == 409
        assert unmerged.status_code == 200 and unmerged.json()["undone_at"]
        assert after_unmerge["orders"] == 1
        assert trends.status_code == 200
        assert {s["group"]: s["points"][0]["value"] for s in trends.json()["series"]} == {
            "GB": 60.0
        }
        assert tiers.status_code == 200 and tiers.json()["ranked_customers"] == 2
        assert forecast.status_code == 422 and "history" in forecast.json()["message"]
        assert disclosures.status_code == 200 and disclosures.json() == []
        assert bad_range.status_code == 422
