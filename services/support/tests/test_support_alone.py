"""Support as a real process with no profile running: the rep still sees who the customer is,
what they own and every earlier ticket, in one call."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from rapport_events.settings import KafkaSettings
from rapport_events.testing.stack import DEV_TOKEN, Stack
from rapport_events.types import (
    ConsentGranted,
    CustomerRegistered,
    CustomerUpdated,
    LineItem,
    OrderCompleted,
)

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
Poll = Callable[..., Awaitable[httpx.Response]]
Publish = Callable[..., Awaitable[None]]


@pytest.fixture
async def support_alone(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> AsyncIterator[Stack]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC": kafka_settings.topic,
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "OTEL_SDK_DISABLED": "true",
    }
    stack = Stack(workdir=tmp_path, env=env, databases={"support": database_url})
    stack.start(["support"])
    try:
        stack.wait_ready(timeout=60)
        yield stack
    finally:
        stack.stop()


class TestSupportWithProfileStopped:
    async def test_the_context_is_complete_from_the_log_alone(
        self, support_alone: Stack, kafka_settings: KafkaSettings, publish: Publish, poll: Poll
    ) -> None:
        assert set(support_alone.services) == {"support"}, "no profile process is running"
        customer_id = str(uuid.uuid4())
        bought = datetime(2026, 2, 1, 15, 30, tzinfo=UTC)
        await publish(
            kafka_settings,
            CustomerRegistered(
                customer_id=customer_id,
                email="ada@example.com",
                phone="+14155550100",
                first_name="Ada",
                last_name="Lovelace",
            ),
            CustomerUpdated(customer_id=customer_id, changes={"tier": "platinum"}),
            ConsentGranted(
                customer_id=customer_id,
                purpose="marketing",
                channel="email",
                source="web_form",
                version=1,
            ),
            OrderCompleted(
                customer_id=customer_id,
                order_id="ord-1",
                occurred_at=bought,
                revenue=Decimal(1299),
                items=(
                    LineItem(
                        product_id="sku-zb14",
                        product_model="ZenBook 14",
                        category="laptops",
                        price=Decimal(1299),
                        serial_number="ZB14-7781",
                    ),
                ),
            ),
        )
        url = support_alone.url("support")
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
            await poll(
                lambda: client.get(f"/customers/{customer_id}/support-context"),
                lambda r: r.status_code == 200 and bool(r.json()["products"]),
                timeout=30,
            )
            earlier = await client.post(
                "/tickets",
                json={
                    "customer_id": customer_id,
                    "subject": "Battery drains overnight",
                    "channel": "phone",
                    "serial_number": "ZB14-7781",
                },
            )
            assert earlier.status_code == 201, earlier.text
            resolved = await client.patch(
                f"/tickets/{earlier.json()['id']}",
                json={"status": "resolved", "resolution": "BIOS update 3.1", "category": "power"},
            )
            assert resolved.status_code == 200, resolved.text

            context = await client.get(f"/customers/{customer_id}/support-context")

        assert context.status_code == 200, context.text
        body = context.json()
        customer = body["customer"]
        assert (customer["first_name"], customer["last_name"]) == ("Ada", "Lovelace")
        assert (customer["email"], customer["phone"], customer["tier"]) == (
            "ada@example.com",
            "+14155550100",
            "platinum",
        )
        assert [(c["purpose"], c["channel"], c["granted"]) for c in customer["consents"]] == [
            ("marketing", "email", True)
        ]
        [product] = body["products"]
        assert (product["product_model"], product["serial_number"]) == ("ZenBook 14", "ZB14-7781")
        assert product["purchased_at"] == "2026-02-01T15:30:00Z"
        assert product["warranty_ends_on"] == "2028-02-01"
        [ticket] = body["tickets"]
        assert (ticket["product_model"], ticket["status"], ticket["resolution"]) == (
            "ZenBook 14",
            "resolved",
            "BIOS update 3.1",
        )
