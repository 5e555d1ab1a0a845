"""The `make run` broker, started as the Procfile starts it, killed and restarted under load:
every customer written reaches every projection, and every service is ready again."""

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rapport_events.testing.broker import free_port, wait_for_port
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

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
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dev_broker.port}",
        "KAFKA_TOPIC": f"rapport.restart-{uuid.uuid4().hex[:8]}",
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
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
            deadline = time.monotonic() + 90
            missing: dict[str, list[str]] = {}
            while time.monotonic() < deadline:
                missing = {
                    name: lost
                    for name, route in PROJECTIONS.items()
                    if (lost := await missing_from(client, stack.url(name) + route, created))
                }
                if not missing:
                    break
                await asyncio.sleep(1.0)
            assert not missing, {name: len(ids) for name, ids in missing.items()}
            for name in SERVICES:
                ready = await client.get(f"{stack.url(name)}/readyz")
                assert ready.status_code == 200, (name, ready.text)
