"""Harder faults on the real pipeline: long broker pauses and kills, killed processes,
injected duplicates and consumer-group rebalances, all while events flow.

Every test writes events through the upstream outbox (or straight to the log),
injects its fault, then asserts on what reached the log, the downstream
projection (one row per application) and the inbox: nothing lost, nothing
applied twice, and where it matters each customer's order kept. Random choices
come from a seeded RNG whose seed is in every assertion message.
"""

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner

from rapport_events.codec import Envelope, encode
from rapport_events.relay import OutboxRelay
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker, free_port, wait_for_port
from rapport_events.testing.harness import Harness, HarnessFactory, tracked, until
from rapport_events.testing.pytest_plugin import DatabaseFactory, test_kafka_settings
from rapport_events.testing.worker import WorkerLauncher

pytestmark = [pytest.mark.processes, pytest.mark.faults]

SEED = int(os.environ.get("RAPPORT_FAULT_SEED", "20240806"))


def ce_id(record: ConsumerRecord[bytes, bytes]) -> str:
    return dict(record.headers)["ce_id"].decode()


def new_customers(count: int) -> list[str]:
    return [f"cust-{n}-{uuid.uuid4().hex[:6]}" for n in range(count)]


def customers_on_every_partition(count: int, partitions: int) -> list[str]:
    """`count` customers whose keys land evenly on every partition (as the producer places
    them), so each member of a group of `partitions` has events to apply."""
    place = DefaultPartitioner()
    every = list(range(partitions))
    chosen: dict[int, list[str]] = {p: [] for p in every}
    while any(len(keys) < count // partitions for keys in chosen.values()):
        customer = new_customers(1)[0]
        keys = chosen[place(customer.encode(), every, every)]
        if len(keys) < count // partitions:
            keys.append(customer)
    return [customer for keys in chosen.values() for customer in keys]


async def assert_applied_exactly_once(
    harness: Harness, written: list[Envelope], context: str
) -> list[Any]:
    """Every written event applied once downstream, nothing else; returns the effects."""
    effects = await harness.effects()
    counts = Counter(row.event_id for row in effects)
    twice = {event_id: n for event_id, n in counts.items() if n > 1}
    missing = {e.id for e in written} - set(counts)
    assert not twice, f"{context}: {len(twice)} events applied more than once: {twice}"
    assert not missing, f"{context}: {len(missing)} events never applied: {sorted(missing)[:5]}"
    assert set(counts) == {e.id for e in written}, f"{context}: unexpected effects"
    assert sorted(await harness.inbox_ids()) == sorted(e.id for e in written), context
    return effects


def assert_order_per_customer(effects: list[Any], context: str) -> dict[str, list[int]]:
    """Each customer's applied seqs, in application order, are exactly 0, 1, 2, ..."""
    applied: dict[str, list[int]] = defaultdict(list)
    for row in effects:
        applied[row.customer_id].append(row.seq)
    for customer, seqs in applied.items():
        assert seqs == list(range(len(seqs))), f"{context}: {customer} applied {seqs}"
    return applied


@dataclass
class Writer:
    """Writes events to the upstream outbox continuously, one transaction per tick.

    Each customer's events carry a sequence number 0, 1, 2, ... in the order written.
    """

    harness: Harness
    customers: list[str]
    interval: float = 0.05
    per_tick: int = 2
    written: list[Envelope] = field(default_factory=list)
    write_seconds: list[float] = field(default_factory=list)
    _next_seq: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: "asyncio.Task[None] | None" = None
    _rng: random.Random = field(default_factory=lambda: random.Random(SEED))

    def start(self) -> "Writer":
        self._task = asyncio.create_task(self._run(), name="outbox-writer")
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            events = []
            for customer in self._rng.sample(self.customers, self.per_tick):
                events.append(tracked(customer, self._next_seq[customer]))
                self._next_seq[customer] += 1
            started = time.monotonic()
            self.written += await self.harness.write(events)
            self.write_seconds.append(time.monotonic() - started)
            await asyncio.sleep(self.interval)

    async def stop(self) -> list[Envelope]:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
        return self.written


@pytest.fixture
def isolated_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of this test alone, so freezing or killing it disturbs no other test."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
async def isolated_harness(isolated_broker: TansuBroker, make_harness: HarnessFactory) -> Harness:
    """A harness on a broker of its own.

    For tests that kill or churn consumer-group members: on Tansu a member killed
    in the shared group can keep later members of that group re-joining forever.
    """
    return await make_harness(test_kafka_settings(isolated_broker.bootstrap_servers))


# --- 1. the broker frozen for 30 s under a steady write load -----------------------------

PAUSE_SEND_TIMEOUT_S = 2.0


class TimedRelay(OutboxRelay):
    """Records how long every send of a record batch and every publish attempt took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_seconds: list[float] = []
        self.attempts: list[tuple[float, bool]] = []

    async def _submit(self, batch: Any) -> Any:
        started = time.monotonic()
        try:
            return await super()._submit(batch)
        finally:
            self.send_seconds.append(time.monotonic() - started)

    async def publish_pending(self) -> int:
        started = time.monotonic()
        try:
            published = await super().publish_pending()
        except Exception:
            self.attempts.append((time.monotonic() - started, False))
            raise
        if published:
            self.attempts.append((time.monotonic() - started, True))
        return published


@pytest.mark.slow
@pytest.mark.timeout(180)
class TestBrokerPausedUnderLoad:
    async def test_thirty_seconds_frozen_loses_nothing_and_every_send_is_bounded(
        self, isolated_broker: TansuBroker, make_harness: HarnessFactory
    ) -> None:
        settings = test_kafka_settings(
            isolated_broker.bootstrap_servers, send_timeout_s=PAUSE_SEND_TIMEOUT_S
        )
        harness = await make_harness(settings)
        relay = await harness.relay(TimedRelay)
        assert isinstance(relay, TimedRelay)
        runner = await harness.runner()
        writer = Writer(harness, new_customers(10)).start()
        await until(lambda: runner.applied >= 20, timeout=30, what="flow before the pause")

        isolated_broker.pause()
        paused_at = time.monotonic()
        try:
            written_at_pause = len(writer.written)
            await asyncio.sleep(30.0)
            written_during_pause = len(writer.written) - written_at_pause
            failures_during_pause = relay.failures
            attempts_during_pause = list(relay.attempts)
        finally:
            isolated_broker.resume()
        paused_for = time.monotonic() - paused_at
        resumed_at = time.monotonic()
        await asyncio.sleep(3.0)  # writes go on after the resume too
        written = await writer.stop()
        await until(
            lambda: harness.has_effects(len(written)), timeout=90, what=f"{len(written)} effects"
        )
        drained_in = time.monotonic() - resumed_at
        await until(harness.backlog_is_empty, timeout=30, what="an empty outbox")
        await asyncio.sleep(1.0)  # late copies of timed-out sends would be applied by now

        effects = await assert_applied_exactly_once(harness, written, "broker paused 30s")
        assert_order_per_customer(effects, "broker paused 30s")
        # The producing side never waited on the broker: its outbox writes went on.
        assert written_during_pause >= 100, written_during_pause
        assert max(writer.write_seconds) < 5.0
        # Every send, and every publish attempt, gave up within its bound.
        bound = PAUSE_SEND_TIMEOUT_S + 0.5
        assert max(relay.send_seconds) < bound, max(relay.send_seconds)
        failed = [seconds for seconds, ok in attempts_during_pause if not ok]
        assert failures_during_pause >= 5, failures_during_pause
        assert max(seconds for seconds, _ in relay.attempts) < 2 * PAUSE_SEND_TIMEOUT_S + 0.5
        print(
            f"broker paused {paused_for:.1f}s: {written_during_pause} events written meanwhile, "
            f"{failures_during_pause} publish attempts failed (longest {max(failed):.2f}s, "
            f"longest single send {max(relay.send_seconds):.2f}s), {len(written)} events "
            f"applied once {drained_in:.1f}s after resume, {runner.duplicates} redeliveries "
            "skipped"
        )


# --- 2. the broker killed and restarted on durable storage -------------------------------


@dataclass
class S3Endpoint:
    url: str
    env: dict[str, str]

    def create_bucket(self) -> str:
        import boto3

        name = f"tansu-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """An S3 API on loopback (moto_server), where Tansu keeps a log that survives a kill."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("ab")
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        url = f"http://127.0.0.1:{port}"
        yield S3Endpoint(
            url,
            {
                "AWS_ACCESS_KEY_ID": "rapport-test",
                "AWS_SECRET_ACCESS_KEY": "rapport-test",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT": url,
                "AWS_ALLOW_HTTP": "true",
            },
        )
    finally:
        moto.terminate()
        moto.wait(10)
        log.close()


@pytest.fixture
def durable_broker(s3_endpoint: S3Endpoint, tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of this test alone whose log lives in a fresh S3 bucket."""
    bucket = s3_endpoint.create_bucket()
    broker = TansuBroker(
        storage=f"s3://{bucket}/", log_path=tmp_path / "tansu.log", env=s3_endpoint.env
    ).start()
    yield broker
    broker.stop()


@pytest.mark.timeout(150)
class TestBrokerKilledAndRestarted:
    async def test_a_sigkilled_broker_back_on_its_storage_loses_and_doubles_nothing(
        self, durable_broker: TansuBroker, make_harness: HarnessFactory
    ) -> None:
        broker = durable_broker
        harness = await make_harness(
            test_kafka_settings(broker.bootstrap_servers, send_timeout_s=2.0)
        )
        await harness.relay()
        runner = await harness.runner()
        writer = Writer(harness, new_customers(8), interval=0.05).start()
        await until(lambda: runner.applied >= 30, timeout=40, what="flow before the kill")

        broker.kill()
        killed_at = time.monotonic()
        applied_at_kill = runner.applied
        await asyncio.sleep(3.0)  # writes go on while the broker is dead
        broker.start()  # same port, same bucket
        down_for = time.monotonic() - killed_at
        await until(
            lambda: runner.applied > applied_at_kill + 20,
            timeout=60,
            what="events applied after the restart",
        )
        written = await writer.stop()
        await until(
            lambda: harness.has_effects(len(written)), timeout=60, what=f"{len(written)} effects"
        )
        recovered_in = time.monotonic() - killed_at - down_for
        await until(harness.backlog_is_empty, timeout=30, what="an empty outbox")
        await asyncio.sleep(1.0)

        effects = await assert_applied_exactly_once(harness, written, "broker SIGKILL")
        assert_order_per_customer(effects, "broker SIGKILL")
        # The log itself kept what was published before the kill.
        on_log = {ce_id(r) for r in await harness.read_topic(harness.topic, len(written))}
        assert on_log >= {e.id for e in written}
        print(
            f"broker SIGKILLed and down {down_for:.1f}s: {len(written)} events applied once, "
            f"all applied {recovered_in:.1f}s after the restart, "
            f"{runner.duplicates} redeliveries skipped"
        )


# --- 3. the relay process killed at random moments ---------------------------------------

RELAY_RUNS = 20
EVENTS_PER_RUN = 30


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[WorkerLauncher]:
    workers = WorkerLauncher(tmp_path)
    yield workers
    workers.kill_all()


@pytest.mark.timeout(180)
class TestRelayProcessKilled:
    async def test_sigkill_at_random_points_leaves_every_event_published_and_applied_once(
        self, harness: Harness, launcher: WorkerLauncher
    ) -> None:
        rng = random.Random(SEED)
        context = f"relay SIGKILL, seed {SEED}"
        # Small batches: many publish / mark-sent cycles for a kill to fall between.
        settings = harness.settings.model_copy(update={"relay_batch_size": 5})
        customers = new_customers(6)
        written: list[Envelope] = []
        kills: list[str] = []
        for run in range(RELAY_RUNS):
            base = run * EVENTS_PER_RUN
            written += await harness.write(
                tracked(customers[n % len(customers)], (base + n) // len(customers))
                for n in range(EVENTS_PER_RUN)
            )
            worker = launcher.start("relay", harness.upstream.url, settings)
            await worker.wait_for("ready", timeout=30)
            delay = rng.uniform(0.0, 0.4)
            await asyncio.sleep(delay)
            pending = await harness.backlog()
            worker.kill()
            kills.append(f"run {run}: killed {delay:.3f}s after ready, {pending} pending")

        final = launcher.start("relay", harness.upstream.url, settings)
        await final.wait_for("ready", timeout=30)
        await until(harness.backlog_is_empty, timeout=60, what=f"{context}: an empty outbox")
        records = await harness.read_topic(harness.topic, len(written), timeout=30)
        runner = await harness.runner()
        await until(
            lambda: harness.has_effects(len(written)), timeout=60, what=f"{context}: effects"
        )
        await until(
            lambda: runner.applied + runner.duplicates >= len(records),
            timeout=30,
            what=f"{context}: every copy delivered",
        )
        await asyncio.sleep(0.5)

        copies = Counter(ce_id(r) for r in records)
        assert set(copies) == {e.id for e in written}, f"{context}: {kills}"
        effects = await assert_applied_exactly_once(harness, written, f"{context}: {kills}")
        republished = sum(n - 1 for n in copies.values())
        assert (runner.applied, runner.duplicates) == (len(written), republished), context
        # Each customer's events were published in order; a republished batch only repeats.
        first_seen: dict[str, list[int]] = defaultdict(list)
        seen: set[str] = set()
        by_id = {e.id: e for e in written}
        for record in records:
            event_id = ce_id(record)
            if event_id not in seen:
                seen.add(event_id)
                event = by_id[event_id].data
                first_seen[event.customer_id].append(event.properties["seq"])
        for customer, seqs in first_seen.items():
            assert seqs == sorted(seqs), f"{context}: {customer} first published as {seqs}"
        assert_order_per_customer(effects, context)
        print(
            f"relay SIGKILLed {RELAY_RUNS} times (seed {SEED}): {len(written)} events, "
            f"{len(records)} records on the log ({republished} republished after a kill "
            f"between publish and mark-sent), applied once each"
        )


# --- 4. the consumer process killed before and after its offset commit -------------------


async def publish_all(harness: Harness, written: list[Envelope]) -> list[Any]:
    """Publish the outbox through an in-process relay; the log's records, in offset order."""
    await harness.relay()
    await until(harness.backlog_is_empty, timeout=30, what="an empty outbox")
    return await harness.read_topic(harness.topic, len(written))


def consumed_records(records: list[Any], committed: dict[int, int | None]) -> set[str]:
    """Event ids of the records below the committed offset of their partition."""
    return {ce_id(r) for r in records if r.offset < (committed.get(r.partition) or 0)}


@pytest.mark.timeout(150)
class TestConsumerProcessKilled:
    @pytest.mark.parametrize("hang", ["before-commit", "after-commit"])
    async def test_a_restarted_consumer_applies_the_rest_and_nothing_twice(
        self, isolated_harness: Harness, launcher: WorkerLauncher, hang: str
    ) -> None:
        harness = isolated_harness
        customers = new_customers(4)
        written = await harness.write(
            [tracked(customer, seq) for seq in range(15) for customer in customers]
        )
        records = await publish_all(harness, written)
        settings = harness.settings.model_copy(update={"consumer_max_records": 4})

        first = launcher.start(
            "consumer",
            harness.downstream.url,
            settings,
            hang=hang,  # type: ignore[arg-type]
            hang_after=25,
        )
        await first.wait_for("hung", timeout=60)
        first.kill()
        applied_before = {row.event_id for row in await harness.effects()}
        committed_ids = consumed_records(records, await harness.committed())
        # Applied but not committed: what the group will deliver again.
        uncommitted = applied_before - committed_ids

        second = launcher.start("consumer", harness.downstream.url, settings)
        await second.wait_for("ready", timeout=60)
        await until(
            lambda: harness.has_effects(len(written)), timeout=60, what=f"{hang}: all effects"
        )
        await asyncio.sleep(1.0)

        assert len(applied_before) >= 25
        assert committed_ids <= applied_before, f"{hang}: committed past what was applied"
        if hang == "before-commit":
            assert uncommitted, "the kill should leave applied events uncommitted"
        else:
            assert not uncommitted, f"after-commit: {len(uncommitted)} uncommitted"
        effects = await assert_applied_exactly_once(harness, written, f"consumer killed {hang}")
        assert_order_per_customer(effects, f"consumer killed {hang}")
        print(
            f"consumer SIGKILLed {hang}: {len(applied_before)} applied, "
            f"{len(uncommitted)} of them uncommitted and redelivered, "
            f"{len(written)} applied once in the end"
        )

    async def test_sigkill_at_random_moments_while_events_flow(
        self, isolated_harness: Harness, launcher: WorkerLauncher
    ) -> None:
        harness = isolated_harness
        rng = random.Random(SEED)
        context = f"consumer SIGKILL at random, seed {SEED}"
        settings = harness.settings.model_copy(update={"consumer_max_records": 10})
        await harness.relay()
        writer = Writer(harness, new_customers(6), interval=0.05).start()
        kills: list[str] = []
        for run in range(5):
            worker = launcher.start("consumer", harness.downstream.url, settings)
            await worker.wait_for("ready", timeout=60)
            delay = rng.uniform(0.5, 3.0)
            await asyncio.sleep(delay)
            worker.kill()
            kills.append(f"run {run}: killed {delay:.2f}s after ready, {len(writer.written)}")
        written = await writer.stop()
        final = launcher.start("consumer", harness.downstream.url, settings)
        await final.wait_for("ready", timeout=60)
        await until(
            lambda: harness.has_effects(len(written)), timeout=60, what=f"{context}: effects"
        )
        await asyncio.sleep(1.0)

        effects = await assert_applied_exactly_once(harness, written, f"{context}: {kills}")
        assert_order_per_customer(effects, f"{context}: {kills}")
        print(f"consumer SIGKILLed 5 times (seed {SEED}): {len(written)} events applied once")


# --- 5. one publish in ten duplicated ------------------------------------------------------


def with_duplicates(messages: list[Any], share: float, rng: random.Random) -> tuple[list[Any], int]:
    """The messages with `share` of them sent twice, each copy somewhere after its original."""
    stream = list(messages)
    chosen = rng.sample(range(len(messages)), round(share * len(messages)))
    for index in chosen:
        position = stream.index(messages[index])
        stream.insert(rng.randint(position + 1, len(stream)), messages[index])
    return stream, len(chosen)


@pytest.fixture
async def labelled_harnesses(
    database_factory: DatabaseFactory,
) -> AsyncIterator[Callable[[str, KafkaSettings], Awaitable[Harness]]]:
    """Builds harnesses whose databases are named after a label, so several never share one."""
    made: list[Harness] = []

    async def make(label: str, settings: KafkaSettings) -> Harness:
        harness = Harness(
            settings,
            await database_factory(f"{label}-upstream"),
            await database_factory(f"{label}-downstream"),
            # A group of its own: members left in the shared one by earlier tests on the
            # session broker would hold up its joins.
            group=f"downstream-{label}-{uuid.uuid4().hex[:8]}",
        )
        made.append(harness)
        return await harness.setup()

    yield make
    for harness in reversed(made):
        await harness.close()


@pytest.mark.timeout(120)
class TestDuplicatePublishes:
    async def test_ten_percent_duplicates_end_in_the_state_of_a_clean_run(
        self,
        labelled_harnesses: Callable[[str, KafkaSettings], Awaitable[Harness]],
        kafka_broker: TansuBroker,
    ) -> None:
        rng = random.Random(SEED)
        context = f"10% duplicates, seed {SEED}"
        customers = new_customers(8)
        envelopes = [
            Envelope(data=tracked(customer, seq), source="/services/upstream")
            for seq in range(25)
            for customer in customers
        ]
        messages = [encode(envelope) for envelope in envelopes]
        faulty_stream, duplicated = with_duplicates(messages, 0.10, rng)

        states = {}
        for name, stream in (("control", messages), ("duplicated", faulty_stream)):
            harness = await labelled_harnesses(
                name, test_kafka_settings(kafka_broker.bootstrap_servers)
            )
            producer = await harness.producer(f"{name}-publisher")
            for message in stream:
                await producer.send(
                    harness.topic, message.value, key=message.key, headers=message.headers
                )
            await producer.flush()
            runner = await harness.runner()
            await until(
                lambda r=runner, n=len(stream): r.applied + r.duplicates >= n,  # type: ignore[misc]
                timeout=60,
                what=f"{context}: {name} deliveries",
            )
            await asyncio.sleep(0.5)
            effects = await assert_applied_exactly_once(harness, envelopes, f"{context}: {name}")
            states[name] = {
                "applied": assert_order_per_customer(effects, f"{context}: {name}"),
                "inbox": sorted(await harness.inbox_ids()),
                "counters": (runner.applied, runner.duplicates, runner.dead_lettered),
            }
            # Both runs' consumers share a group name: the control one leaves before the
            # next joins, so the second never waits on a rebalance with a stale member.
            await runner.stop()

        assert duplicated == 20
        assert states["control"]["counters"] == (200, 0, 0)
        assert states["duplicated"]["counters"] == (200, duplicated, 0), context
        assert states["duplicated"]["applied"] == states["control"]["applied"], context
        assert states["duplicated"]["inbox"] == states["control"]["inbox"], context
        print(f"{duplicated} of 200 envelopes published twice: final state equals the clean run")


# --- 6. consumer group rebalanced 1 -> 3 -> 1 while events flow --------------------------


@pytest.mark.timeout(150)
class TestRebalance:
    async def test_growing_to_three_and_back_to_one_keeps_every_event_and_each_order(
        self, isolated_harness: Harness
    ) -> None:
        harness = isolated_harness
        settings_note = f"rebalance 1-3-1, seed {SEED}"
        await harness.relay()
        customers = customers_on_every_partition(12, harness.settings.partitions)
        writer = Writer(harness, customers, interval=0.04, per_tick=3).start()
        first = await harness.runner()
        await until(lambda: first.applied >= 30, timeout=30, what="one consumer applying")

        async with asyncio.timeout(30):
            second, third = await asyncio.gather(harness.runner(), harness.runner())
        members = (first, second, third)
        await until(
            lambda: all(m.applied > 0 for m in members), timeout=30, what="three consumers sharing"
        )
        await asyncio.sleep(2.0)
        applied_by_three = [m.applied for m in members]
        async with asyncio.timeout(30):
            await asyncio.gather(second.stop(), third.stop())
        applied_by_first_before = first.applied
        await until(
            lambda: first.applied > applied_by_first_before + 30,
            timeout=30,
            what="one consumer taking over again",
        )
        written = await writer.stop()
        await until(
            lambda: harness.has_effects(len(written)), timeout=60, what=f"{len(written)} effects"
        )
        await asyncio.sleep(1.0)

        effects = await assert_applied_exactly_once(harness, written, settings_note)
        applied = assert_order_per_customer(effects, settings_note)
        assert sum(m.applied for m in members) == len(written)
        assert sum(len(seqs) for seqs in applied.values()) == len(written)
        print(
            f"rebalanced 1 -> 3 -> 1 under load: {len(written)} events, applied by the three "
            f"members {[m.applied for m in members]} (while three: {applied_by_three}), "
            f"{sum(m.duplicates for m in members)} redeliveries skipped, each customer in order"
        )
