"""The `make run` broker, started as the Procfile starts it, killed and restarted under load.

What must hold: the log keeps every event the relays marked sent (a plain Kafka client in
a fresh group reads a registration for every customer created), profile accepts writes
throughout, every customer reaches every projection without a service restart, and every
/readyz is 200 again.
"""

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from rapport_events.codec import header_map
from rapport_events.testing.broker import free_port, wait_for_port
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
PROJECTIONS = {
    "profile": "/customers/{id}/timeline",
    "campaign": "/audience/{id}",
    "support": "/customers/{id}/support-context",
    "partner-share": "/customers/{id}",
}


def procfile_command(name: str, ports: dict[str, int]) -> list[str]:
    """The Procfile's command for a process, on the test's own ports."""
    for line in (REPO / "Procfile").read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            for default, port in ports.items():
                command = command.replace(default, str(port))
            return shlex.split(command)
    raise AssertionError(f"no {name} process in the Procfile")


class DevBroker:
    """The broker and its S3 storage as `make run` starts them."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.ports = {"9010": free_port(), "9092": self.port}
        self.workdir = workdir
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.s3 = self._spawn("s3")
        self.broker = self.start()

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            procfile_command(name, self.ports),
            stdout=(self.workdir / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
        )

    def start(self) -> subprocess.Popen[bytes]:
        self.broker = self._spawn("broker")
        wait_for_port(self.port, timeout=60)
        return self.broker

    def kill(self) -> None:
        self.broker.send_signal(signal.SIGKILL)
        self.broker.wait(10)

    def stop(self) -> None:
        for process in (self.broker, self.s3):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def dev_broker(tmp_path: Path) -> Iterator[DevBroker]:
    broker = DevBroker(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def stack(dev_broker: DevBroker, tmp_path: Path) -> Iterator[Stack]:
    databases = {name: f"sqlite:///{tmp_path / name.replace('-', '_')}.db" for name in SERVICES}
    env = {
        **kafka_env(f"127.0.0.1:{dev_broker.port}", "restart"),
        "KAFKA_SEND_TIMEOUT_S": "3",
        "KAFKA_CONSUMER_REJOIN_AFTER_S": "5",
        "KAFKA_CONSUMER_STUCK_AFTER_S": "5",
        "OTEL_SDK_DISABLED": "true",
    }
    running = Stack(workdir=tmp_path, env=env, databases=databases).start()
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


async def create_customers(
    client: httpx.AsyncClient, profile: str, created: list[str], stop: asyncio.Event
) -> None:
    """Customers one after another until told to stop, as a busy front-end would."""
    while not stop.is_set():
        reply = await client.post(
            f"{profile}/customers",
            json={
                "email": f"c-{uuid.uuid4().hex[:10]}@example.com",
                "first_name": "Load",
                "last_name": "Test",
            },
            headers=AUTH,
        )
        assert reply.status_code == 201, reply.text
        created.append(reply.json()["id"])
        await asyncio.sleep(0.02)


async def missing_from(client: httpx.AsyncClient, url: str, ids: list[str]) -> list[str]:
    missing = []
    for customer_id in ids:
        reply = await client.get(url.format(id=customer_id), headers=AUTH)
        if reply.status_code != 200:
            missing.append(customer_id)
    return missing


@pytest.mark.timeout(240)
class TestDevBrokerRestart:
    async def test_a_killed_dev_broker_restarted_loses_no_event_in_any_projection(
        self, dev_broker: DevBroker, stack: Stack
    ) -> None:
        created: list[str] = []
        stop = asyncio.Event()
        async with httpx.AsyncClient(timeout=10.0) as client:
            writer = asyncio.create_task(
                create_customers(client, stack.url("profile"), created, stop)
            )
            await asyncio.sleep(3.0)
            dev_broker.kill()
            written_before_kill = len(created)
            await asyncio.sleep(2.0)  # requests go on: their events wait in the outboxes
            dev_broker.start()
            await asyncio.sleep(3.0)
            stop.set()
            await writer

            assert written_before_kill >= 20, "too little load before the kill"
            assert len(created) > written_before_kill
            registered = await registrations_on_the_log(stack.env, set(created))
            assert registered == set(created), f"{len(set(created) - registered)} not on the log"
            deadline = time.monotonic() + 90
            missing: dict[str, int] = {}
            while time.monotonic() < deadline:
                missing = {
                    name: len(lost)
                    for name, route in PROJECTIONS.items()
                    if (lost := await missing_from(client, stack.url(name) + route, created))
                }
                if not missing:
                    break
                await asyncio.sleep(1.0)
            assert not missing, f"customers missing from projections: {missing}"
            for name in SERVICES:
                ready = await eventually_ready(client, stack.url(name))
                assert ready.status_code == 200, (name, ready.text)


async def eventually_ready(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """/readyz once it is 200, or its last answer after 70 s (restarts age out in 60 s)."""
    deadline = time.monotonic() + 70
    ready = await client.get(f"{url}/readyz")
    while ready.status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        ready = await client.get(f"{url}/readyz")
    return ready


async def registrations_on_the_log(env: Mapping[str, str], wanted: set[str]) -> set[str]:
    """Customers with a customer.registered event on the log, read by a fresh group."""
    consumer = AIOKafkaConsumer(
        env["KAFKA_TOPIC"],
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        group_id=f"check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while not wanted <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    # The headers say it all: the data's personal fields are sealed.
                    headers = header_map(record.headers)
                    if headers["ce_type"] == "rapport.customer.registered.v2":
                        seen.add(headers["ce_subject"])
    finally:
        await consumer.stop()
    return seen
