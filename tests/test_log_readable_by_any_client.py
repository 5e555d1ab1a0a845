"""The log is plain CloudEvents on Kafka: librdkafka (what kcat is built on) reads it."""

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from rapport_events.settings import KafkaSettings
from rapport_events.testing.stack import DEV_TOKEN
from rapport_profile.main import create_app
from rapport_profile.settings import Settings

TAIL = Path(__file__).parents[1] / "tools" / "tail_events.py"


def _tail(settings: KafkaSettings) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            str(TAIL),
            "--bootstrap",
            settings.bootstrap_servers,
            "--topic",
            settings.topic,
            "--idle-exit",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


class TestCustomerRegisteredOnTheWire:
    async def test_librdkafka_client_sees_cloudevents_headers_and_json(
        self, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        app = create_app(Settings(database_url=database_url, kafka=kafka_settings))
        email = f"grace-{uuid.uuid4().hex[:6]}@example.com"
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://profile",
                headers={"Authorization": f"Bearer {DEV_TOKEN}"},
            ) as client,
        ):
            reply = await client.post(
                "/customers", json={"email": email, "first_name": "Grace", "last_name": "Hopper"}
            )
            assert reply.status_code == 201, reply.text
            customer_id = reply.json()["id"]
            records: list[dict] = []
            for _ in range(20):
                records = await asyncio.to_thread(_tail, kafka_settings)
                if records:
                    break
                await asyncio.sleep(0.5)

        assert len(records) == 1
        record = records[0]
        headers = record["headers"]
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_type"] == "rapport.customer.registered.v1"
        assert headers["ce_source"] == "/services/profile"
        assert headers["ce_subject"] == customer_id == record["key"]
        assert uuid.UUID(headers["ce_id"])
        assert headers["ce_time"]
        assert headers["content-type"] == "application/json"
        assert headers["traceparent"].startswith("00-")
        assert record["payload"]["customer_id"] == customer_id
        assert record["payload"]["email"] == email
        assert "type" not in record["payload"]
