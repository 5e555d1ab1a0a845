"""A customer created on profile reaches the three other services, on one trace."""

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
PROJECTION_ROUTES = {
    "campaign": "/audience/{id}",
    "support": "/customers/{id}/support-context",
    "partner-share": "/customers/{id}",
}


@pytest.fixture
async def stack(kafka_broker: TansuBroker, database_factory: DatabaseFactory, tmp_path: Path):
    databases = {name: await database_factory(name.replace("-", "_")) for name in SERVICES}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "KAFKA_TOPIC": f"rapport.e2e-{uuid.uuid4().hex[:8]}",
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "RAPPORT_TRACE_DIR": str(tmp_path / "traces"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    running = Stack(workdir=tmp_path, env=env, databases=databases).start()
    try:
        running.wait_ready(timeout=60)
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
    async def test_customer_shows_in_three_services_on_one_trace(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        traceparent_id = uuid.uuid4().hex
        trace_id = f"0x{traceparent_id}"
        headers = {**AUTH, "traceparent": f"00-{traceparent_id}-{uuid.uuid4().hex[:16]}-01"}
        async with httpx.AsyncClient(timeout=5.0) as client:
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

        expected = {"profile", "campaign", "support", "partner-share"}
        deadline = time.monotonic() + 15
        seen = _services_on_trace(tmp_path / "traces", trace_id)
        while seen != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen = _services_on_trace(tmp_path / "traces", trace_id)
        assert seen == expected, f"services on trace {trace_id}: {sorted(seen)}"

    async def test_unknown_customer_is_404_everywhere(self, stack: Stack) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            for name, route in PROJECTION_ROUTES.items():
                reply = await client.get(
                    stack.url(name) + route.format(id="no-such-id"), headers=AUTH
                )
                assert reply.status_code == 404, (name, reply.text)
                assert reply.json()["error"] == "not_found"
