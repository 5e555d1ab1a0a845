"""One truth per customer: profile's value, campaign's audience and segment rules, and
support's context agree on orders, revenue, lifetime value and tier."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from rapport_events import value
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import until_value
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.stack import DEV_TOKEN, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
WRITE_KEY = ("rapport-dev-write-key", "")
SERVICES = ["profile", "campaign", "support"]
GOLD_AND_VALUABLE = {
    "all": [
        {"metric": "tier", "op": "eq", "value": "gold"},
        {"metric": "lifetime_value", "op": "gte", "value": 1000},
    ]
}


@pytest.fixture
async def stack(database_factory: DatabaseFactory, tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    databases = {name: await database_factory(name) for name in SERVICES}
    env = kafka_env(broker.bootstrap_servers, "value")
    running = Stack(workdir=tmp_path, env=env, databases=databases).start(SERVICES)
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()
        broker.stop()


def _order(customer_id: str, order_id: str, revenue: int, cost: int, days_ago: int) -> dict:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "type": "track",
        "userId": customer_id,
        "event": "Order Completed",
        "messageId": f"m-{uuid.uuid4().hex}",
        "timestamp": at.isoformat(),
        "properties": {
            "order_id": order_id,
            "revenue": revenue,
            "cost": cost,
            "products": [{"product_id": f"p-{order_id}", "price": revenue}],
        },
    }


async def _register(client: httpx.AsyncClient, stack: Stack, name: str) -> str:
    created = await client.post(
        f"{stack.url('profile')}/customers",
        json={"email": f"{name}-{uuid.uuid4().hex[:6]}@example.com", "first_name": name,
              "last_name": "Value"},
        headers=AUTH,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


class TestOneValuePerCustomer:
    async def test_profile_campaign_and_support_agree_and_segments_use_profiles_tier(
        self, stack: Stack
    ) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            ada = await _register(client, stack, "ada")
            bob = await _register(client, stack, "bob")
            segment = await client.post(
                f"{stack.url('campaign')}/segments",
                json={"name": "gold and valuable", "rule": GOLD_AND_VALUABLE},
                headers=AUTH,
            )
            assert segment.status_code == 201, segment.text
            # Ada: profit 200 + 300 + 250 over 370 days; Bob: one small order.
            batch = [
                _order(ada, "o-1", 300, 100, 400),
                _order(ada, "o-2", 500, 200, 100),
                _order(ada, "o-3", 400, 150, 30),
                _order(bob, "o-4", 50, 10, 5),
            ]
            sent = await client.post(
                f"{stack.url('profile')}/v1/batch", json={"batch": batch}, auth=WRITE_KEY
            )
            assert sent.status_code == 200, sent.text

            async def in_every_service(customer_id: str, orders: int) -> Any:
                metrics = (
                    await client.get(
                        f"{stack.url('profile')}/customers/{customer_id}/metrics", headers=AUTH
                    )
                ).json()
                audience = (
                    await client.get(
                        f"{stack.url('campaign')}/audience/{customer_id}", headers=AUTH
                    )
                ).json()
                context = (
                    await client.get(
                        f"{stack.url('support')}/customers/{customer_id}/support-context",
                        headers=AUTH,
                    )
                ).json()
                customer = context.get("customer") or {}
                counts = (metrics.get("orders"), audience.get("orders"), customer.get("orders"))
                return (metrics, audience, customer) if counts == (orders,) * 3 else None

            metrics, audience, support = await until_value(
                lambda: in_every_service(ada, 3), 30, "Ada's three orders everywhere"
            )
            bob_metrics, bob_audience, bob_support = await until_value(
                lambda: in_every_service(bob, 1), 30, "Bob's order everywhere"
            )
            members = await until_value(
                lambda: _members(client, stack, segment.json()["id"]), 15, "a segment member"
            )

        # The one method, by hand: profit 750 over the 370 days between first and last
        # order, so 750 + 750 / (370 / 365.25) * 3 years.
        years = 370 * 86400 / value.YEAR_SECONDS
        expected = (Decimal(750) + Decimal(750) / Decimal(str(years)) * 3).quantize(value.CENT)
        assert Decimal(metrics["lifetime_value"]) == expected
        assert metrics["tier"] == value.tier(3, expected) == "gold"
        for name in ("revenue", "lifetime_value"):
            assert Decimal(metrics[name]) == Decimal(audience[name]) == Decimal(support[name])
        assert metrics["tier"] == audience["tier"] == support["tier"]
        assert Decimal(metrics["average_order_value"]) == Decimal(audience["average_order_value"])
        assert Decimal(metrics["revenue"]) == Decimal("1200.00")

        assert bob_metrics["tier"] == bob_audience["tier"] == bob_support["tier"] == "bronze"
        assert Decimal(bob_metrics["lifetime_value"]) == Decimal(bob_audience["lifetime_value"])
        assert members == [ada]


async def _members(client: httpx.AsyncClient, stack: Stack, segment_id: str) -> list[str] | None:
    reply = await client.get(f"{stack.url('campaign')}/segments/{segment_id}/members", headers=AUTH)
    ids = [member["customer_id"] for member in reply.json()["members"]]
    return ids or None
