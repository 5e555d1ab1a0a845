"""A customer created on profile, and an order tracked on it, reach every service on one trace."""

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from opentelemetry.instrumentation.utils import suppress_http_instrumentation

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import until_value
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
WRITE_KEY = ("rapport-dev-write-key", "")
ALL_SERVICES = {"profile", "campaign", "support", "partner-share"}
ORDER_COMPLETED = "rapport.order.completed.v1"
PROJECTION_ROUTES = {
    "campaign": "/audience/{id}",
    "support": "/customers/{id}/support-context",
    "partner-share": "/customers/{id}",
}


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A broker of the module's own: the services' consumer groups (named after them) start
    empty, with no members left behind by other tests of the same services."""
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
async def stack(
    own_broker: TansuBroker,
    module_database_factory: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
):  # type: ignore[no-untyped-def]
    """The four services as processes, shared by the module's tests of one database kind
    (each test makes customers of its own and follows its own trace)."""
    databases = {name: await module_database_factory(name.replace("-", "_")) for name in SERVICES}
    workdir = tmp_path_factory.mktemp("stack")
    env = {
        **kafka_env(own_broker.bootstrap_servers, "e2e"),
        "RAPPORT_TRACE_DIR": str(workdir / "traces"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    running = Stack(workdir=workdir, env=env, databases=databases).start()
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


async def _wait_until_shown(client: httpx.AsyncClient, url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await client.get(url, headers=AUTH)).status_code == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} did not show the customer within {timeout}s")


@contextlib.asynccontextmanager
async def _client():  # type: ignore[no-untyped-def]
    """A client that sends our traceparent as given: where another test has instrumented
    httpx in this process, its own client span would replace the header otherwise."""
    with suppress_http_instrumentation():
        async with httpx.AsyncClient(timeout=5.0) as client:
            yield client


def _spans(trace_dir: Path) -> list[dict]:
    spans = []
    for path in trace_dir.glob("*.jsonl"):
        spans.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return spans


def _services_on_trace(trace_dir: Path, trace_id: str) -> set[str]:
    return {
        span["resource"]["attributes"]["service.name"]
        for span in _spans(trace_dir)
        if span["context"]["trace_id"] == trace_id
    }


class TestCustomerRegisteredReachesEveryService:
    async def test_customer_shows_in_three_services_on_one_trace(self, stack: Stack) -> None:
        traceparent_id = uuid.uuid4().hex
        trace_id = f"0x{traceparent_id}"
        headers = {**AUTH, "traceparent": f"00-{traceparent_id}-{uuid.uuid4().hex[:16]}-01"}
        async with _client() as client:
            created = await client.post(
                f"{stack.url('profile')}/customers",
                json={
                    "email": f"ada-{uuid.uuid4().hex[:6]}@example.com",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "country": "gb",
                },
                headers=headers,
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            latencies = {
                name: await _wait_until_shown(
                    client, stack.url(name) + route.format(id=customer_id), timeout=10
                )
                for name, route in PROJECTION_ROUTES.items()
            }
        assert max(latencies.values()) < 2.0, latencies

        expected = {"profile", "campaign", "support", "partner-share", "sales"}
        deadline = time.monotonic() + 15
        seen = _services_on_trace(stack.workdir / "traces", trace_id)
        while seen != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen = _services_on_trace(stack.workdir / "traces", trace_id)
        assert seen == expected, f"services on trace {trace_id}: {sorted(seen)}"

    async def test_unknown_customer_is_404_everywhere(self, stack: Stack) -> None:
        async with _client() as client:
            for name, route in PROJECTION_ROUTES.items():
                reply = await client.get(
                    stack.url(name) + route.format(id="no-such-id"), headers=AUTH
                )
                assert reply.status_code == 404, (name, reply.text)
                assert reply.json()["error"] == "not_found"


def _trace(trace_dir: Path, trace_id: str) -> list[dict]:
    return [span for span in _spans(trace_dir) if span["context"]["trace_id"] == trace_id]


def _services_processing(spans: list[dict], event_type: str) -> set[str]:
    return {
        span["resource"]["attributes"]["service.name"]
        for span in spans
        if span["kind"] == "SpanKind.CONSUMER"
        and span["attributes"].get("cloudevents.event_type") == event_type
    }


def _orphans(spans: list[dict]) -> list[dict]:
    """Spans whose parent is not in the trace: a connected trace has exactly one."""
    ids = {span["context"]["span_id"] for span in spans}
    return [span for span in spans if span["parent_id"] not in ids]


class TestOrderTrackedReachesEveryServiceOnOneTrace:
    async def test_one_connected_trace_from_track_call_to_every_consumer(
        self, stack: Stack
    ) -> None:
        async with _client() as client:
            created = await client.post(
                f"{stack.url('profile')}/customers",
                json={
                    "email": f"grace-{uuid.uuid4().hex[:6]}@example.com",
                    "first_name": "Grace",
                    "last_name": "Hopper",
                },
                headers=AUTH,
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            await _wait_until_shown(
                client, stack.url("support") + f"/customers/{customer_id}/support-context", 10
            )

            trace_hex, parent_hex = uuid.uuid4().hex, uuid.uuid4().hex[:16]
            tracked = await client.post(
                f"{stack.url('profile')}/v1/track",
                auth=WRITE_KEY,
                headers={"traceparent": f"00-{trace_hex}-{parent_hex}-01"},
                json={
                    "userId": customer_id,
                    "event": "Order Completed",
                    "messageId": f"m-{uuid.uuid4().hex}",
                    "properties": {
                        "order_id": "o-trace-1",
                        "revenue": 349,
                        "currency": "EUR",
                        "products": [
                            {
                                "product_id": "sku-x2",
                                "name": "X2 phone",
                                "model": "X2",
                                "price": 349,
                                "quantity": 1,
                            }
                        ],
                    },
                },
            )
            assert tracked.status_code == 200, tracked.text

            async def support_shows_the_phone() -> bool:
                url = stack.url("support") + f"/customers/{customer_id}/support-context"
                products = (await client.get(url, headers=AUTH)).json()["products"]
                return [p["product_model"] for p in products] == ["X2"]

            async def campaign_counts_the_order() -> bool:
                url = stack.url("campaign") + f"/audience/{customer_id}"
                return (await client.get(url, headers=AUTH)).json()["orders"] == 1

            async def profile_counts_the_order() -> bool:
                url = stack.url("profile") + f"/customers/{customer_id}/metrics"
                return (await client.get(url, headers=AUTH)).json()["orders"] == 1

            await until_value(support_shows_the_phone, 10, "the phone in support-context")
            await until_value(campaign_counts_the_order, 10, "the order in campaign")
            await until_value(profile_counts_the_order, 10, "the order in profile's metrics")

        trace_id = f"0x{trace_hex}"

        # Each process exports its spans on its own schedule (every 100 ms here), so a
        # parent may reach the files after its children: wait for the trace to be whole
        # (every consumer, one root) and say what is missing if it never is.
        async def whole_trace() -> list[dict]:
            spans = _trace(stack.workdir / "traces", trace_id)
            processed = _services_processing(spans, ORDER_COMPLETED) == ALL_SERVICES
            return spans if processed and len(_orphans(spans)) == 1 else []

        try:
            spans = await until_value(whole_trace, 15, "one connected trace")
        except AssertionError:
            spans = _trace(stack.workdir / "traces", trace_id)
            processing = sorted(_services_processing(spans, ORDER_COMPLETED))
            raise AssertionError(
                f"order.completed processed by {processing}; spans without a parent in the trace: "
                f"{[(s['name'], s['parent_id']) for s in _orphans(spans)]}"
            ) from None
        assert {s["resource"]["attributes"]["service.name"] for s in spans} == ALL_SERVICES
        orphans = _orphans(spans)
        assert [(s["name"], s["parent_id"]) for s in orphans] == [
            (orphans[0]["name"], f"0x{parent_hex}")
        ], "the trace is not connected: more than one span has no parent in it"
        assert orphans[0]["resource"]["attributes"]["service.name"] == "profile"
        assert orphans[0]["kind"] == "SpanKind.SERVER"
        producers = [
            s
            for s in spans
            if s["kind"] == "SpanKind.PRODUCER"
            and s["attributes"].get("cloudevents.event_type") == ORDER_COMPLETED
        ]
        assert len(producers) == 1, [s["name"] for s in producers]
        consumers = [
            s
            for s in spans
            if s["kind"] == "SpanKind.CONSUMER"
            and s["attributes"].get("cloudevents.event_type") == ORDER_COMPLETED
        ]
        producer_id = producers[0]["context"]["span_id"]
        assert all(c["parent_id"] == producer_id for c in consumers), [
            (c["name"], c["parent_id"]) for c in consumers
        ]
