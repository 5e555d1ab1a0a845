"""The log is plain CloudEvents on Kafka: `make tail` (librdkafka, no Rapport code) reads it."""

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from rapport_events.settings import KafkaSettings
from rapport_events.testing.stack import DEV_TOKEN
from rapport_profile.main import create_app
from rapport_profile.settings import Settings

ROOT = Path(__file__).parents[1]


def make_tail(settings: KafkaSettings, *args: str) -> subprocess.Popen[str]:
    """`make tail` exactly as the README says, pointed at the test broker and topic."""
    arguments = f"--bootstrap {settings.bootstrap_servers} --topic {settings.topic} " + " ".join(
        args
    )
    return subprocess.Popen(
        ["make", "-s", "tail", f"ARGS={arguments}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_tail(settings: KafkaSettings, *args: str) -> str:
    process = make_tail(settings, *args)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    return out


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def register(client: httpx.AsyncClient, name: str) -> str:
    email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
    reply = await client.post(
        "/customers", json={"email": email, "first_name": name, "last_name": "Hopper"}
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def wait_for_records(settings: KafkaSettings, count: int) -> list[dict]:
    records: list[dict] = []
    for _ in range(30):
        out = await asyncio.to_thread(run_tail, settings, "--json", "--idle-exit", "2")
        records = json_lines(out)
        if len(records) >= count:
            break
        await asyncio.sleep(0.3)
    return records


@pytest.fixture
async def profile(tmp_path: Path, kafka_settings: KafkaSettings):
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'profile.db'}", kafka=kafka_settings)
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://profile",
            headers={"Authorization": f"Bearer {DEV_TOKEN}"},
        ) as client,
    ):
        yield client


class TestMakeTail:
    async def test_json_lines_carry_offset_key_cloudevents_headers_and_value(
        self, profile: httpx.AsyncClient, kafka_settings: KafkaSettings
    ) -> None:
        first = await register(profile, "Grace")
        second = await register(profile, "Alan")

        records = await wait_for_records(kafka_settings, 2)

        assert {record["key"] for record in records} == {first, second}
        for record in records:
            headers = record["headers"]
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_type"] == "rapport.customer.registered.v2"
            assert headers["ce_source"] == "/services/profile"
            assert headers["ce_subject"] == record["key"]
            assert uuid.UUID(headers["ce_id"])
            assert headers["ce_time"]
            assert headers["content-type"] == "application/json"
            assert headers["traceparent"].startswith("00-")
            assert record["value"]["customer_id"] == record["key"]
            # Personal fields travel sealed under the customer's data key, named in a header.
            assert "email" not in record["value"] and record["value"]["sealed"]
            assert headers["ce_datakey"].startswith(record["key"] + "/")
            assert isinstance(record["offset"], int) and record["offset"] >= 0
            assert record["topic"] == kafka_settings.topic

        limited = json_lines(run_tail(kafka_settings, "--json", "--limit", "1"))
        assert len(limited) == 1

        readable = run_tail(kafka_settings)
        assert readable.count(f"{kafka_settings.topic} partition ") == 2
        assert f"key {first}" in readable and f"key {second}" in readable
        assert "ce_type: rapport.customer.registered.v2" in readable
        assert f'"customer_id": "{first}"' in readable

    async def test_follow_and_new_only_print_records_that_arrive_later(
        self, profile: httpx.AsyncClient, kafka_settings: KafkaSettings
    ) -> None:
        earlier = await register(profile, "Ada")
        assert len(await wait_for_records(kafka_settings, 1)) == 1
        follower = make_tail(kafka_settings, "--json", "--follow", "--limit", "2")
        newcomer = make_tail(kafka_settings, "--json", "--new-only", "--limit", "1")
        try:
            await asyncio.sleep(4)
            assert follower.poll() is None, "--follow must not stop at the end of the log"
            assert newcomer.poll() is None, "--new-only waits for a new record"
            later = await register(profile, "Barbara")
            followed, follow_err = await asyncio.to_thread(follower.communicate, timeout=60)
            new, new_err = await asyncio.to_thread(newcomer.communicate, timeout=60)
        finally:
            for process in (follower, newcomer):
                if process.poll() is None:
                    process.kill()
        assert follower.returncode == 0, follow_err
        assert newcomer.returncode == 0, new_err
        assert [record["key"] for record in json_lines(followed)] == [earlier, later]
        assert [record["key"] for record in json_lines(new)] == [later]


KAFKAJS = ROOT / "tools" / "kafkajs"


@pytest.fixture(scope="module")
def kafkajs() -> Path:
    """tools/kafkajs with its packages installed from the lockfile (`npm ci`) when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to check that kafkajs reads the log")
    if not (KAFKAJS / "node_modules" / "kafkajs").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=KAFKAJS,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return KAFKAJS / "tail.mjs"


class TestKafkaJs:
    async def test_reads_the_records_with_their_cloudevents_headers(
        self, profile: httpx.AsyncClient, kafka_settings: KafkaSettings, kafkajs: Path
    ) -> None:
        customer = await register(profile, "Katherine")
        assert len(await wait_for_records(kafka_settings, 1)) == 1

        done = await asyncio.to_thread(
            subprocess.run,
            [
                "node",
                str(kafkajs),
                "--bootstrap",
                kafka_settings.bootstrap_servers,
                "--topic",
                kafka_settings.topic,
                "--idle-exit",
                "3",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert done.returncode == 0, done.stderr
        records = json_lines(done.stdout)
        assert [record["key"] for record in records] == [customer]
        headers = records[0]["headers"]
        assert headers["ce_type"] == "rapport.customer.registered.v2"
        assert headers["ce_subject"] == customer
        assert headers["content-type"] == "application/json"
        assert records[0]["value"]["customer_id"] == customer
