"""Support and profile as real processes on one broker: what the rep sees, with profile
running and with profile stopped, and support's tickets on profile's timeline."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.pytest_plugin import DatabaseFactory, test_kafka_settings
from rapport_events.testing.stack import DEV_TOKEN, Stack

pytestmark = pytest.mark.processes

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
WRITE_KEY = ("rapport-dev-write-key", "")
Poll = Callable[..., Awaitable[httpx.Response]]
ANGRY = "My ZenBook 14 died again after two weeks. Terrible, I am furious and want a refund!"


@pytest.fixture(scope="module")
async def shared_stack(
    module_database_factory: DatabaseFactory,
    kafka_broker: TansuBroker,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """Profile and support as uvicorn processes, each on its own database, started once
    for the module's tests of one database kind."""
    kafka = test_kafka_settings(kafka_broker.bootstrap_servers)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "OTEL_SDK_DISABLED": "true",
        "OTEL_METRICS_EXPORTER": "none",
    }
    databases = {
        "profile": await module_database_factory("profile"),
        "support": await module_database_factory("support"),
    }
    running = Stack(workdir=tmp_path_factory.mktemp("stack"), env=env, databases=databases)
    running.start(list(databases))
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(shared_stack: Stack) -> Stack:
    """The shared stack with both services running (a test may have stopped one)."""
    stopped = [name for name in shared_stack.databases if name not in shared_stack.services]
    if stopped:
        shared_stack.start(stopped)
        shared_stack.wait_ready(timeout=90)
    return shared_stack


async def register(profile: httpx.AsyncClient, **fields: Any) -> str:
    created = await profile.post(
        "/customers",
        json={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", **fields},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def timeline_entry(
    profile: httpx.AsyncClient, poll: Poll, customer_id: str, kind: str, ticket_id: str
) -> dict[str, Any]:
    """The entry of `kind` about `ticket_id` on profile's timeline, once it arrives."""

    def entries(response: httpx.Response) -> list[dict[str, Any]]:
        if response.status_code != 200:
            return []
        items = response.json()["items"]
        return [i for i in items if i["data"].get("ticket_id") == ticket_id]

    reply = await poll(
        lambda: profile.get(f"/customers/{customer_id}/timeline", params={"type": kind}),
        lambda r: bool(entries(r)),
        timeout=30,
    )
    found = entries(reply)
    assert found, f"no {kind} for ticket {ticket_id} on the timeline: {reply.text}"
    return found[0]


class TestSupportWithProfileStopped:
    async def test_the_rep_still_sees_products_and_tickets(self, stack: Stack, poll: Poll) -> None:
        profile = httpx.AsyncClient(base_url=stack.url("profile"), headers=AUTH, timeout=10)
        support = httpx.AsyncClient(base_url=stack.url("support"), headers=AUTH, timeout=10)
        async with profile, support:
            customer_id = await register(profile, phone="+14155550100")
            consent = await profile.put(
                f"/customers/{customer_id}/consents",
                json={"purpose": "marketing", "channel": "email", "granted": True},
            )
            assert consent.status_code == 200, consent.text
            tracked = await profile.post(
                "/v1/track",
                auth=WRITE_KEY,
                json={
                    "userId": customer_id,
                    "event": "Order Completed",
                    "timestamp": "2026-02-01T15:30:00Z",
                    "properties": {
                        "order_id": "ord-1",
                        "revenue": 1299,
                        "products": [
                            {
                                "product_id": "sku-zb14",
                                "model": "ZenBook 14",
                                "category": "laptops",
                                "price": 1299,
                                "serial_number": "ZB14-7781",
                            }
                        ],
                    },
                },
            )
            assert tracked.status_code == 200, tracked.text
            context_url = f"/customers/{customer_id}/support-context"
            await poll(
                lambda: support.get(context_url),
                lambda r: (
                    r.status_code == 200
                    and bool(r.json()["products"])
                    and bool(r.json()["customer"]["consents"])
                ),
                timeout=30,
            )
            earlier = await support.post(
                "/tickets",
                json={
                    "customer_id": customer_id,
                    "subject": "Battery drains overnight",
                    "channel": "phone",
                    "serial_number": "ZB14-7781",
                },
            )
            assert earlier.status_code == 201, earlier.text
            resolved = await support.patch(
                f"/tickets/{earlier.json()['id']}",
                json={"status": "resolved", "resolution": "BIOS update 3.1", "category": "power"},
            )
            assert resolved.status_code == 200, resolved.text

            stack.stop(["profile"])
            with pytest.raises(httpx.ConnectError):
                await profile.get("/healthz")
            today = await support.post(
                "/tickets",
                json={"customer_id": customer_id, "subject": "Fan is loud", "channel": "phone"},
            )
            context = await support.get(context_url)

        assert today.status_code == 201, today.text
        assert context.status_code == 200, context.text
        body = context.json()
        customer = body["customer"]
        assert (customer["first_name"], customer["last_name"]) == ("Ada", "Lovelace")
        assert (customer["email"], customer["phone"]) == ("ada@example.com", "+14155550100")
        assert [(c["purpose"], c["channel"], c["granted"]) for c in customer["consents"]] == [
            ("marketing", "email", True)
        ]
        [product] = body["products"]
        assert (product["product_model"], product["serial_number"]) == ("ZenBook 14", "ZB14-7781")
        assert product["purchased_at"] == "2026-02-01T15:30:00Z"
        assert product["warranty_ends_on"] == "2028-02-01"
        newest, older = body["tickets"]
        assert (newest["id"], newest["subject"], newest["status"]) == (
            today.json()["id"],
            "Fan is loud",
            "new",
        )
        assert (older["id"], older["product_model"], older["status"], older["resolution"]) == (
            earlier.json()["id"],
            "ZenBook 14",
            "resolved",
            "BIOS update 3.1",
        )


class TestMentionsOnTheTimeline:
    async def test_a_complaint_from_a_known_handle_is_a_ticket_on_the_customers_timeline(
        self, stack: Stack, poll: Poll
    ) -> None:
        profile = httpx.AsyncClient(base_url=stack.url("profile"), headers=AUTH, timeout=10)
        support = httpx.AsyncClient(base_url=stack.url("support"), headers=AUTH, timeout=10)
        async with profile, support:
            customer_id = await register(
                profile, email="ada.l@example.com", social_handles={"twitter": "@Ada_L"}
            )
            await poll(
                lambda: support.get(f"/customers/{customer_id}/support-context"),
                lambda r: r.status_code == 200,
                timeout=30,
            )
            posted = await support.post(
                "/social/mentions",
                json={"platform": "twitter", "handle": "@ada_l", "text": ANGRY},
            )
            assert posted.status_code == 201, posted.text
            mention = posted.json()
            assert (mention["customer_id"], mention["sentiment"]) == (customer_id, "negative")
            assert mention["ticket_id"], mention

            opened = await timeline_entry(
                profile, poll, customer_id, "ticket.opened", mention["ticket_id"]
            )
            received = await poll(
                lambda: profile.get(
                    f"/customers/{customer_id}/timeline",
                    params={"type": "social.mention.received"},
                ),
                lambda r: r.status_code == 200 and bool(r.json()["items"]),
                timeout=30,
            )

        assert opened["source"] == "/services/support"
        assert (opened["data"]["channel"], opened["data"]["category"]) == ("social", "complaint")
        [seen] = received.json()["items"]
        assert seen["data"]["mention_id"] == mention["id"]
        assert (seen["data"]["sentiment"], seen["data"]["linked"]) == ("negative", True)

    async def test_a_complaint_linked_later_joins_the_customers_timeline(
        self, stack: Stack, poll: Poll
    ) -> None:
        profile = httpx.AsyncClient(base_url=stack.url("profile"), headers=AUTH, timeout=10)
        support = httpx.AsyncClient(base_url=stack.url("support"), headers=AUTH, timeout=10)
        async with profile, support:
            customer_id = await register(profile, email="ada.unknown@example.com")
            posted = await support.post(
                "/social/mentions",
                json={"platform": "twitter", "handle": "@ada_unknown", "text": ANGRY},
            )
            assert posted.status_code == 201, posted.text
            mention = posted.json()
            assert mention["customer_id"] is None and mention["ticket_id"], mention

            changed = await profile.patch(
                f"/customers/{customer_id}", json={"social_handles": {"twitter": "@Ada_Unknown"}}
            )
            assert changed.status_code == 200, changed.text
            linked = await timeline_entry(
                profile, poll, customer_id, "ticket.updated", mention["ticket_id"]
            )
            context = await support.get(f"/customers/{customer_id}/support-context")

        assert linked["source"] == "/services/support"
        assert linked["data"]["changes"]["customer_id"] == customer_id
        assert linked["data"]["changes"]["previous_customer_id"].startswith("social:twitter:")
        assert [t["id"] for t in context.json()["tickets"]] == [mention["ticket_id"]]
