"""Two replicas of every service on PostgreSQL, one of each killed with SIGKILL under load.

Eight uvicorn processes (two per service) share each service's database and one broker;
campaign sends to the development mail sink. Clients create customers, track orders in
batches, rename customers and flip their SMS consent, round-robin over the replicas, while
two campaigns send e-mail. Mid-load the replica of each service whose relay is active is
killed (`kill -9`), the standby's takeover is timed, and the killed one is started again.

What must hold once the load has drained: every acknowledged write is in every projection,
applied once (order counts per customer in profile, campaign and support, and the events
on profile's timeline); no e-mail reaches the sink twice, and every targeted one is sent
(and at the sink) or recorded as in doubt (a killed replica had handed it over);
each customer's events are on the log in the order they were acknowledged, and every
projection ends on the last acknowledged name and consent.
"""

import asyncio
import base64
import contextlib
import email
import email.policy
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from rapport_events.codec import decode
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker, free_port, wait_for_port
from rapport_events.testing.harness import until_value
from rapport_events.testing.procfile import start_process
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.sealed import key_reader, keys_for
from rapport_events.testing.stack import DEV_TOKEN, SERVICES, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(600)]

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
TRACKING = {"Authorization": "Basic " + base64.b64encode(b"rapport-dev-write-key:").decode()}
CUSTOMERS = 40
CAMPAIGNS = 2  # e-mails sent: CUSTOMERS * CAMPAIGNS
WRITERS = 4  # concurrent clients; each owns every WRITERS-th customer
MAX_STEPS = 12  # a customer's writes: order batches, renames, consent flips
SETTLE_S = 90.0  # how long the projections get to catch up once the load stops


@dataclass
class Acknowledged:
    """What the services answered 2xx to, per customer, in the order they answered."""

    customers: list[str] = field(default_factory=list)
    orders: dict[str, list[tuple[str, Decimal]]] = field(default_factory=lambda: defaultdict(list))
    names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sms: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    # Per customer, the order ids and names in acknowledgement order, as on the log.
    sequence: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    retried: int = 0

    def total(self) -> int:
        return (
            len(self.customers)
            + sum(len(v) for v in self.orders.values())
            + sum(len(v) for v in self.names.values())
            + sum(len(v) for v in self.sms.values())
        )


class Replicas:
    """Sends each request to the next replica of a service, and again to the other one when
    the first dies under it (the requests carry idempotency keys or set absolute values)."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient, acked: Acknowledged) -> None:
        self.stack = stack
        self.client = client
        self.acked = acked
        self._turn = Counter[str]()

    async def request(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + 60
        while True:
            keys = self.stack.replicas(service)
            self._turn[service] += 1
            key = keys[self._turn[service] % len(keys)]
            try:
                reply = await self.client.request(method, self.stack.url(key) + path, **kwargs)
            except httpx.TransportError:
                reply = None
            # A dying replica may answer 503 (shutting down) or nothing at all: try the other.
            if reply is not None and reply.status_code < 500:
                return reply
            self.acked.retried += 1
            assert time.monotonic() < deadline, f"{method} {path}: no replica answered"
            await asyncio.sleep(0.05)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of the test's own: its consumer groups (named after the services) start
    empty, with no member left behind by another test."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The development SMTP sink, started as the Procfile starts it: (port, directory)."""
    port, directory = free_port(), tmp_path / "mail"
    process = start_process(PROCFILE, "mail", {"--port": str(port), "--dir": str(directory)})
    try:
        wait_for_port(port, timeout=30)
        yield port, directory
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def stack(
    database_factory: DatabaseFactory,
    own_broker: TansuBroker,
    mail_sink: tuple[int, Path],
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    if not (await database_factory("probe")).startswith("postgresql"):
        pytest.skip("SQLite has one writer per database file: replicas need PostgreSQL")
    # Empty databases: the two replicas of each service migrate it at the same moment.
    databases = {name: await database_factory(name.replace("-", "_")) for name in SERVICES}
    env = {
        **kafka_env(own_broker.bootstrap_servers, "kill"),
        # Short sessions, so the group drops a killed member in seconds; not so short that
        # heartbeats delayed on a busy machine expire them.
        "KAFKA_SESSION_TIMEOUT_MS": "4000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "OTEL_SDK_DISABLED": "true",
        "CAMPAIGN_SMTP_PORT": str(mail_sink[0]),
        # Small claims, so both replicas send; a short lease, so what the killed replica
        # had claimed is sent by the other within the test.
        "CAMPAIGN_SEND_BATCH_SIZE": "10",
        "CAMPAIGN_SEND_LEASE_S": "10",
        "CAMPAIGN_WORKER_INTERVAL_S": "0.5",
        "KAFKA_CONSUMER_REJOIN_AFTER_S": "5",
        "KAFKA_CONSUMER_STUCK_AFTER_S": "5",
    }
    running = Stack(workdir=tmp_path, env=env, databases=databases).start_replicas(2)
    try:
        running.wait_ready(timeout=240)  # support imports scikit-learn: slow on a busy machine
        yield running
    finally:
        running.stop()


async def relay_roles(client: httpx.AsyncClient, stack: Stack, name: str) -> dict[str, str]:
    roles = {}
    for key in stack.replicas(name):
        try:
            roles[key] = (await client.get(f"{stack.url(key)}/readyz")).json()["relay"]
        except httpx.TransportError:
            roles[key] = "down"
    return roles


async def active_relay(client: httpx.AsyncClient, stack: Stack, name: str) -> str:
    """The replica whose relay publishes, once exactly one does and the other stands by."""

    async def one_active() -> str | None:
        roles = await relay_roles(client, stack, name)
        active = [key for key, role in roles.items() if role == "active"]
        standby = [key for key, role in roles.items() if role == "standby"]
        return active[0] if len(active) == 1 and len(standby) == 1 else None

    return await until_value(one_active, 30, f"one active relay of {name}")


async def took_over(
    client: httpx.AsyncClient, stack: Stack, name: str, killed: str, killed_at: float
) -> float:
    """Seconds from the kill of `killed` until the other replica's relay is active."""
    standby = next(key for key in stack.replicas(name) if key != killed)

    async def standby_active() -> bool:
        roles = await relay_roles(client, stack, name)
        return roles[standby] == "active"

    await until_value(standby_active, 30, f"{standby}'s relay taking over")
    return time.monotonic() - killed_at


async def create_customer(replicas: Replicas, n: int) -> str:
    body = {
        "email": f"kill-{n}-{uuid.uuid4().hex[:8]}@example.com",
        "first_name": "Kill",
        "last_name": "v0",
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    reply = await replicas.request("profile", "POST", "/customers", json=body, headers=AUTH | key)
    assert reply.status_code == 201, reply.text
    customer_id = reply.json()["id"]
    consent = {"purpose": "marketing", "channel": "email", "granted": True}
    path = f"/customers/{customer_id}/consents"
    reply = await replicas.request("profile", "PUT", path, json=consent, headers=AUTH)
    assert reply.status_code == 200, reply.text
    replicas.acked.customers.append(customer_id)
    return customer_id


async def track_orders(replicas: Replicas, customer_id: str, step: int) -> None:
    """Two orders in one /v1/batch; messageIds make a retry on the other replica a no-op."""
    orders = [(f"o-{customer_id}-{step}-{i}", Decimal(10 + step + i)) for i in range(2)]
    batch = [
        {
            "type": "track",
            "userId": customer_id,
            "event": "Order Completed",
            "messageId": f"m-{order_id}",
            "properties": {
                "order_id": order_id,
                "revenue": float(revenue),
                "currency": "EUR",
                "products": [
                    {"product_id": "sku-x2", "model": "X2", "price": float(revenue), "quantity": 1}
                ],
            },
        }
        for order_id, revenue in orders
    ]
    reply = await replicas.request(
        "profile", "POST", "/v1/batch", json={"batch": batch}, headers=TRACKING
    )
    assert reply.status_code == 200, reply.text
    replicas.acked.orders[customer_id].extend(orders)
    replicas.acked.sequence[customer_id].extend(order_id for order_id, _ in orders)


async def rename(replicas: Replicas, customer_id: str, step: int) -> None:
    name = f"v{step}"
    reply = await replicas.request(
        "profile", "PATCH", f"/customers/{customer_id}", json={"last_name": name}, headers=AUTH
    )
    assert reply.status_code == 200, reply.text
    replicas.acked.names[customer_id].append(name)
    replicas.acked.sequence[customer_id].append(name)


async def flip_sms_consent(replicas: Replicas, customer_id: str, step: int) -> None:
    granted = step % 2 == 0
    consent = {"purpose": "marketing", "channel": "sms", "granted": granted}
    path = f"/customers/{customer_id}/consents"
    reply = await replicas.request("profile", "PUT", path, json=consent, headers=AUTH)
    assert reply.status_code == 200, reply.text
    replicas.acked.sms[customer_id].append(granted)


STEPS = (track_orders, rename, flip_sms_consent)


async def write_load(replicas: Replicas, customers: list[str], stop: asyncio.Event) -> None:
    """One client: its customers' next write each in turn (one customer's writes one after
    the other), until told to stop or every customer has made MAX_STEPS writes."""
    for step in range(MAX_STEPS):
        for customer_id in customers:
            if stop.is_set():
                return
            await STEPS[step % len(STEPS)](replicas, customer_id, step)


async def launch_campaigns(replicas: Replicas, customers: list[str]) -> list[str]:
    campaigns = []
    for n in range(CAMPAIGNS):
        body = {
            "name": f"kill test {n}",
            "channel": "email",
            "variants": [{"name": "A", "subject": f"Kill test {n}", "body": "The X2 is here"}],
            "audience": {"customer_ids": customers},
            "frequency_cap": {"max_messages": 10, "per_hours": 1},
        }
        created = await replicas.request("campaign", "POST", "/campaigns", json=body, headers=AUTH)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        launch = f"/campaigns/{campaign_id}/launch"
        launched = await replicas.request("campaign", "POST", launch, headers=AUTH)
        if launched.status_code == 409:  # a launch the dying replica made before it answered
            read = await replicas.request(
                "campaign", "GET", f"/campaigns/{campaign_id}", headers=AUTH
            )
            assert read.json()["status"] in ("sending", "sent"), launched.text
        else:
            assert launched.status_code == 202, launched.text
        campaigns.append(campaign_id)
    return campaigns


def mail_received(directory: Path) -> Counter[tuple[str, str]]:
    """How many times the sink received each campaign's e-mail to each recipient (a message
    sent again gets a new Message-ID, so the recipient and subject say which it is)."""
    received: Counter[tuple[str, str]] = Counter()
    for path in directory.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        received[(str(message["Delivered-To"]), str(message["Subject"]))] += 1
    return received


async def campaign_knows_everyone(client: httpx.AsyncClient, stack: Stack, ids: list[str]) -> bool:
    """Every customer in campaign's audience with e-mail consent (so every message goes)."""
    url = stack.url(stack.replicas("campaign")[0])
    for customer_id in ids:
        if (await client.get(f"{url}/audience/{customer_id}", headers=AUTH)).status_code != 200:
            return False
    connection = await asyncpg.connect(stack.databases["campaign"])
    try:
        granted = await connection.fetchval(
            "SELECT count(*) FROM campaign_consents WHERE channel = 'email' AND granted"
            " AND customer_id = ANY($1::text[])",
            ids,
        )
    finally:
        await connection.close()
    return bool(granted == len(ids))


@dataclass
class Check:
    """Per customer and projection: what was acknowledged against what is there."""

    present: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)

    def expect(self, where: str, acknowledged: int, found: int) -> None:
        self.present += min(acknowledged, found)
        if found < acknowledged:
            self.missing.append(f"{where}: {found} of {acknowledged}")
        if found > acknowledged:
            self.duplicates.append(f"{where}: {found} for {acknowledged}")

    def settled(self) -> bool:
        return not (self.missing or self.duplicates or self.out_of_order)


async def check_projections(client: httpx.AsyncClient, stack: Stack, acked: Acknowledged) -> Check:
    """Every acknowledged write once in every projection, each ending on the last value."""
    check = Check()
    url = {name: stack.url(stack.replicas(name)[1]) for name in SERVICES}
    campaign_db = await asyncpg.connect(stack.databases["campaign"])
    try:
        sms_in_campaign = {
            row["customer_id"]: row["granted"]
            for row in await campaign_db.fetch(
                "SELECT customer_id, granted FROM campaign_consents WHERE channel = 'sms'"
            )
        }
    finally:
        await campaign_db.close()
    for customer_id in acked.customers:
        orders = len(acked.orders[customer_id])
        last_name = (acked.names[customer_id] or ["v0"])[-1]
        profile = await client.get(f"{url['profile']}/customers/{customer_id}", headers=AUTH)
        check.expect(f"profile {customer_id}", 1, int(profile.status_code == 200))
        metrics = await client.get(
            f"{url['profile']}/customers/{customer_id}/metrics", headers=AUTH
        )
        check.expect(f"profile metrics {customer_id}", orders, metrics.json().get("orders", 0))
        timeline = await client.get(
            f"{url['profile']}/customers/{customer_id}/timeline",
            params={"type": "order.completed", "limit": 500},
            headers=AUTH,
        )
        on_timeline = Counter(item["data"]["order_id"] for item in timeline.json()["items"])
        check.expect(f"profile timeline {customer_id}", orders, sum(on_timeline.values()))
        audience = await client.get(f"{url['campaign']}/audience/{customer_id}", headers=AUTH)
        member = audience.json() if audience.status_code == 200 else {}
        check.expect(f"campaign audience {customer_id}", orders, member.get("orders", 0))
        context = await client.get(
            f"{url['support']}/customers/{customer_id}/support-context", headers=AUTH
        )
        summary = (context.json() if context.status_code == 200 else {}).get("customer") or {}
        check.expect(f"support {customer_id}", orders, summary.get("orders", 0))
        known = await client.get(f"{url['partner-share']}/customers/{customer_id}", headers=AUTH)
        check.expect(f"partner-share {customer_id}", 1, int(known.status_code == 200))
        for where, name in (
            ("campaign", member.get("last_name")),
            ("support", summary.get("last_name")),
        ):
            if name != last_name:
                check.out_of_order.append(f"{where} {customer_id}: name {name}, last {last_name}")
        if acked.sms[customer_id]:
            last_sms = acked.sms[customer_id][-1]
            support_sms = [
                c["granted"] for c in summary.get("consents", []) if c["channel"] == "sms"
            ]
            for where, granted in (
                ("campaign", sms_in_campaign.get(customer_id)),
                ("support", support_sms[0] if support_sms else None),
            ):
                if granted != last_sms:
                    check.out_of_order.append(
                        f"{where} {customer_id}: sms consent {granted}, last {last_sms}"
                    )
    return check


async def log_sequences(env: dict[str, str], acked: Acknowledged) -> dict[str, list[str]]:
    """Per customer, the order ids and names of profile's events as the log holds them, each
    at its first copy (a relay taking over sends again what the old one may have sent)."""
    settings = KafkaSettings(
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        topic=env["KAFKA_TOPIC"],
        keys_topic=env["KAFKA_KEYS_TOPIC"],
    )
    # Names are sealed on the log: opened with the data keys, as a service opens them.
    async with key_reader(settings, client_id="kill-test"):
        return await _first_copies(settings, acked)


async def _first_copies(settings: KafkaSettings, acked: Acknowledged) -> dict[str, list[str]]:
    wanted = {label for labels in acked.sequence.values() for label in labels}
    consumer = AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, list[str]] = defaultdict(list)
    found: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while not wanted <= found and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                await keys_for(records)
                for record in records:
                    envelope = decode(record.value, record.headers)
                    data = envelope.data
                    if envelope.type == "rapport.order.completed.v1":
                        label = data.order_id
                    elif envelope.type == "rapport.customer.updated.v1":
                        label = data.changes.get("last_name")
                    else:
                        continue
                    if label in wanted and label not in seen[data.customer_id]:
                        seen[data.customer_id].append(label)
                        found.add(label)
    finally:
        await consumer.stop()
    return seen


def out_of_order_on_the_log(acked: Acknowledged, on_log: dict[str, list[str]]) -> list[str]:
    """Customers whose events are on the log in another order than acknowledged."""
    return [
        f"{customer_id}: acknowledged {labels}, on the log {on_log.get(customer_id)}"
        for customer_id, labels in acked.sequence.items()
        if [label for label in on_log.get(customer_id, []) if label in labels] != labels
    ]


@pytest.mark.usefixtures("own_broker")
class TestReplicasKilledUnderLoad:
    async def test_every_acknowledged_write_once_in_order_and_no_mail_twice(
        self, stack: Stack, mail_sink: tuple[int, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        started = time.monotonic()
        acked = Acknowledged()
        stop = asyncio.Event()
        limits = httpx.Limits(keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            replicas = Replicas(stack, client, acked)
            active = {name: await active_relay(client, stack, name) for name in SERVICES}

            customers = [await create_customer(replicas, n) for n in range(CUSTOMERS)]
            await until_value(
                lambda: campaign_knows_everyone(client, stack, customers),
                60,
                "every customer in campaign's audience with e-mail consent",
            )
            writers = [
                asyncio.create_task(write_load(replicas, customers[w::WRITERS], stop))
                for w in range(WRITERS)
            ]
            try:
                campaigns = await launch_campaigns(replicas, customers)
                mails = CUSTOMERS * CAMPAIGNS
                # Mid-send and mid-load: some e-mail has gone, most has not.
                await until_value(
                    lambda: asyncio.sleep(0, len(mail_received(mail_sink[1])) >= mails // 8),
                    60,
                    "the first e-mails at the sink",
                )
                acked_at_kill = acked.total()
                killed_at = time.monotonic()
                for key in active.values():
                    stack.kill(key)
                takeovers = [
                    took_over(client, stack, name, key, killed_at) for name, key in active.items()
                ]
                failover = dict(zip(active, await asyncio.gather(*takeovers), strict=True))
                mail_at_kill = sum(mail_received(mail_sink[1]).values())
                for key in active.values():
                    stack.restart(key)
                # In a thread: the writers go on meanwhile.
                await asyncio.to_thread(stack.wait_ready, 240, list(active.values()))
                restarted_after = time.monotonic() - killed_at
                acked_at_restart = acked.total()

                def written_after_restart() -> Any:
                    done = all(writer.done() for writer in writers)
                    return asyncio.sleep(
                        0, done or acked.total() >= acked_at_restart + WRITERS * 10
                    )

                await until_value(written_after_restart, 120, "writes to the restarted replicas")
                stop.set()
                await asyncio.gather(*writers)
                load_s = time.monotonic() - killed_at
            finally:
                for writer in writers:  # a failed check leaves none behind
                    writer.cancel()

            async def all_sent() -> dict[str, Any] | None:
                reports = [
                    (
                        await replicas.request(
                            "campaign", "GET", f"/campaigns/{c}/report", headers=AUTH
                        )
                    ).json()
                    for c in campaigns
                ]
                unfinished = sum(r["pending"] + r["held"] for r in reports)
                finished = {key: sum(r[key] for r in reports) for key in ("sent", "failed")}
                return None if unfinished else finished

            report = await until_value(all_sent, SETTLE_S, "every e-mail sent")
            settled_at = time.monotonic()
            check = Check()

            async def projections_settled() -> Check | None:
                nonlocal check
                check = await check_projections(client, stack, acked)
                return check if check.settled() else None

            with contextlib.suppress(AssertionError):  # reported below, with the counts
                await until_value(projections_settled, SETTLE_S, "every projection caught up")
            converged_s = time.monotonic() - settled_at
        on_log = await log_sequences(dict(stack.env), acked)
        log_out_of_order = out_of_order_on_the_log(acked, on_log)
        received = mail_received(mail_sink[1])
        mail_duplicates = {m: n for m, n in received.items() if n > 1}

        with capsys.disabled():
            print(
                f"\nkill test: {len(SERVICES)} services x 2 replicas, {CUSTOMERS} customers, "
                f"{acked.total()} writes acknowledged ({acked_at_kill} before the kill, "
                f"{acked.retried} requests sent again to the other replica)"
            )
            print(
                "  relay failover (kill -9 of the active replica -> standby active): "
                + ", ".join(f"{n} {s:.2f}s" for n, s in failover.items())
            )
            print(
                f"  killed replicas ready again after {restarted_after:.1f}s; load after the kill "
                f"{load_s:.1f}s; projections converged {converged_s:.1f}s after the last e-mail"
            )
            print(
                f"  acknowledged writes present: {check.present} checks, "
                f"missing {len(check.missing)}, duplicates {len(check.duplicates)}, "
                f"out of order {len(check.out_of_order)} in projections, "
                f"{len(log_out_of_order)} customers out of order on the log"
            )
            print(
                f"  e-mail: {mails} targeted, {report['sent']} sent, {report['failed']} in doubt "
                f"(handed to the SMTP server by a killed replica), {len(received)} distinct at "
                f"the sink ({mail_at_kill} before the restart), "
                f"{sum(received.values()) - len(received)} duplicates"
            )
            print(f"  whole test {time.monotonic() - started:.0f}s")
        assert check.missing == [], check.missing[:10]
        assert check.duplicates == [], check.duplicates[:10]
        assert check.out_of_order == [], check.out_of_order[:10]
        assert log_out_of_order == [], log_out_of_order[:5]
        assert mail_duplicates == {}, mail_duplicates
        # Each e-mail at most once: one a killed replica had handed over is not sent again.
        assert report["sent"] + report["failed"] == mails
        assert report["sent"] <= len(received) <= mails
        assert len(acked.customers) == CUSTOMERS
        assert acked.total() > acked_at_kill, "no write was acknowledged after the kill"
