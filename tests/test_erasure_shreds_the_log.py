"""Erasure reaches the log: once a customer is erased, a plain Kafka client reading the
topic from the beginning, every service's database files, and a replay of the log into a
fresh projection find none of their personal data; a customer not erased still replays."""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rapport_events.codec import decode
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import until_value
from rapport_events.testing.sealed import key_reader, keys_for
from rapport_events.testing.stack import DEV_TOKEN, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
WRITE_KEY = ("rapport-dev-write-key", "")
PEERS = ("campaign", "support", "partner-share", "sales")
PROJECTION_ROUTES = {
    "campaign": "/audience/{id}",
    "support": "/customers/{id}/support-context",
    "partner-share": "/customers/{id}",
}
REPLAYED = ("support",)


class Person:
    """Someone with every kind of personal field the services and the log hold."""

    def __init__(self, first: str, last: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.first, self.last = f"{first}{tag}", f"{last}{tag}"
        self.email = f"{first.lower()}.{tag}@example.com"
        self.phone = f"+1415{int(tag, 16) % 10_000_000:07d}"
        self.handle = f"@{first.lower()}_{tag}"

    def customer(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "phone": self.phone,
            "first_name": self.first,
            "last_name": self.last,
            "city": "Lyon",
            "social_handles": {"x": self.handle},
        }

    @property
    def needles(self) -> tuple[str, ...]:
        """What must not be found in clear: e-mail (also inside URLs), phone, names, handle."""
        return (self.email, self.phone.lstrip("+"), self.first, self.last, self.handle)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def stack(own_broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The five services as processes on SQLite files, profile knowing the other four."""
    folder = tmp_path_factory.mktemp("databases")
    databases = {name: f"sqlite:///{folder / (name + '.db')}" for name in (*PEERS, "profile")}
    env = kafka_env(own_broker.bootstrap_servers, "shred")
    running = Stack(workdir=folder, env=env, databases=databases)
    try:
        running.start(list(PEERS))
        running.env = {
            **env,
            "PROFILE_ERASURE_WAIT_S": "10",
            **{
                f"PROFILE_{name.upper().replace('-', '_')}_URL": running.url(name) for name in PEERS
            },
        }
        running.start(["profile"])
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


def settings_of(stack: Stack) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        topic=stack.env["KAFKA_TOPIC"],
        keys_topic=stack.env["KAFKA_KEYS_TOPIC"],
    )


async def read_topic(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every record of `topic` from the beginning, with a plain aiokafka consumer (no group,
    no Rapport decoder): until a fetch comes back empty."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while batch := await consumer.getmany(timeout_ms=1000):
            records.extend(record for part in batch.values() for record in part)
        return records
    finally:
        await consumer.stop()


def bytes_of(record: Any) -> bytes:
    headers = b" ".join(name.encode() + b"=" + (value or b"") for name, value in record.headers)
    return b" ".join((record.key or b"", record.value or b"", headers))


def in_clear(records: Iterable[Any], needles: tuple[str, ...]) -> list[tuple[str, bytes]]:
    return [
        (needle, bytes_of(record)[:300])
        for record in records
        for needle in needles
        if needle.encode() in bytes_of(record)
    ]


def files_holding(folder: Path, needles: tuple[str, ...]) -> dict[str, list[str]]:
    """Which SQLite files (database, -wal, -shm) in `folder` hold which needles."""
    found = {}
    for path in sorted(folder.glob("*.db*")):
        held = [needle for needle in needles if needle.encode() in path.read_bytes()]
        if held:
            found[path.name] = held
    return found


async def register(client: httpx.AsyncClient, stack: Stack, person: Person) -> str:
    """The person on every service and on the log: registered, a page whose URL holds
    their e-mail, a ticket and a social mention naming them."""
    profile, support = stack.url("profile"), stack.url("support")
    created = await client.post(f"{profile}/customers", json=person.customer(), headers=AUTH)
    assert created.status_code == 201, created.text
    customer_id: str = created.json()["id"]
    page = await client.post(
        f"{profile}/v1/page",
        auth=WRITE_KEY,
        json={
            "userId": customer_id,
            "name": "Account",
            "properties": {"url": f"https://shop.example/account?email={person.email}"},
        },
    )
    ticket = await client.post(
        f"{support}/tickets",
        json={
            "customer_id": customer_id,
            "subject": f"Login fails for {person.first} {person.last}",
            "description": f"Call {person.phone} or write to {person.email}",
        },
        headers=AUTH,
    )
    mention = await client.post(
        f"{support}/social/mentions",
        json={"platform": "x", "handle": person.handle, "text": f"I am {person.first}, help"},
        headers=AUTH,
    )
    assert (page.status_code, ticket.status_code, mention.status_code) == (200, 201, 201), (
        page.text + ticket.text + mention.text
    )
    for name, route in PROJECTION_ROUTES.items():
        url = stack.url(name) + route.format(id=customer_id)

        async def shown(url: str = url) -> bool:
            return (await client.get(url, headers=AUTH)).status_code == 200

        await until_value(shown, timeout=15, what=f"{name} showing {customer_id}")
    return customer_id


async def readable_by_rapport(settings: KafkaSettings, records: list[Any]) -> str:
    """The log decoded with Rapport's keys, all of it, as text."""
    async with key_reader(settings, client_id="shred-test"):
        await keys_for(records)
        return " ".join(
            decode(r.value, r.headers).data.model_dump_json() for r in records if r.headers
        )


def replay(stack: Stack, service: str, into: Path) -> None:
    """`make replay SERVICE=<service>` (the build step) into a fresh SQLite file."""
    prefix = service.upper().replace("-", "_")
    env = {
        **os.environ,
        **stack.env,
        "RAPPORT_ENV": "development",
        f"{prefix}_DATABASE_URL": stack.databases[service],
    }
    module = f"rapport_{service.replace('-', '_')}.replay"
    done = subprocess.run(
        [sys.executable, "-m", module, "build", "--into", f"sqlite:///{into}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]


class TestErasureReachesTheLog:
    async def test_no_plain_client_file_or_replay_finds_an_erased_person(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        started = time.monotonic()
        zenobia, olga = Person("Zenobia", "Quillfeather"), Person("Olga", "Kettleworth")
        settings = settings_of(stack)
        async with httpx.AsyncClient(timeout=15.0) as client:
            erased_id = await register(client, stack, zenobia)
            await register(client, stack, olga)

            log = await read_topic(settings, settings.topic)
            # Sealed from the start: nobody without the keys reads them, and Rapport does.
            assert in_clear(log, zenobia.needles + olga.needles) == []
            readable = await readable_by_rapport(settings, log)
            assert [n for n in zenobia.needles if n not in readable] == []
            print(f"registered on every service and read back: {time.monotonic() - started:.1f}s")

            erased = await client.delete(
                f"{stack.url('profile')}/customers/{erased_id}", headers=AUTH
            )
            assert erased.status_code == 200 and erased.json()["status"] == "completed", erased.text

        keys = await until_value(
            lambda: _tombstoned(settings, erased_id), timeout=15, what="the keys' tombstones"
        )
        log = await read_topic(settings, settings.topic)
        assert any(r.key == erased_id.encode() for r in log)
        assert in_clear(log + keys, zenobia.needles) == []
        print(f"erased, log read: {time.monotonic() - started:.1f}s")
        databases = Path(stack.databases["profile"].removeprefix("sqlite:///")).parent
        left = await until_value(
            lambda: _clean(databases, zenobia.needles), timeout=15, what="clean database files"
        )
        assert left is True

        print(f"database files clean: {time.monotonic() - started:.1f}s")
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        for service in REPLAYED:
            replay(stack, service, fresh / f"{service}.db")
        assert files_holding(fresh, zenobia.needles) == {}
        # The replay did open the sealed fields of the customer not erased.
        rebuilt = files_holding(fresh, (olga.email, olga.first))
        assert set(rebuilt) == {"support.db"}, rebuilt
        print(f"erasure reaches the log: {time.monotonic() - started:.1f}s")


async def _tombstoned(settings: KafkaSettings, customer_id: str) -> list[Any] | None:
    """The key topic once every data key of the customer reads as null (latest per record
    key), with the erased marker: None before."""
    records = await read_topic(settings, settings.keys_topic)
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        latest[record.key] = record.value
    kids = [key for key in latest if key.startswith(f"{customer_id}/".encode())]
    marker = latest.get(customer_id.encode())
    if not kids or any(latest[kid] is not None for kid in kids) or marker is None:
        return None
    assert json.loads(marker) == {"customer_id": customer_id, "erased": True}
    return records


async def _clean(folder: Path, needles: tuple[str, ...]) -> bool:
    return not files_holding(folder, needles)
