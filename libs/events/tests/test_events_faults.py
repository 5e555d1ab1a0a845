"""Faults injected into the real pipeline: a frozen broker, redelivery, poison, crashes.

Each test bounds its waits and asserts exact counts of what reached the log,
the downstream projection and the inbox.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope, encode
from rapport_events.consumer import ConsumerRunner, HandlerMap
from rapport_events.relay import OutboxRelay, PendingMessage
from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.harness import (
    Harness,
    HarnessFactory,
    record_effect,
    tracked,
    until,
)
from rapport_events.testing.pytest_plugin import test_kafka_settings
from rapport_events.types import InteractionTracked

pytestmark = [pytest.mark.processes, pytest.mark.faults, pytest.mark.timeout(120)]

SEND_TIMEOUT_S = 1.0


def customers(count: int) -> list[str]:
    return [f"cust-{n}-{uuid.uuid4().hex[:6]}" for n in range(count)]


def with_key_records(written: list[Envelope]) -> int:
    """How many data key records writing these events minted: one per customer."""
    return len({envelope.subject for envelope in written})


def ce_id(record: ConsumerRecord[bytes, bytes]) -> str:
    return dict(record.headers)["ce_id"].decode()


class TimedRelay(OutboxRelay):
    """A relay that records how long each publish attempt took and how it ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attempts: list[tuple[float, bool]] = []

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


@pytest.fixture
def isolated_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of this test alone, so freezing it disturbs no other test."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
async def isolated_harness(isolated_broker: TansuBroker, make_harness: HarnessFactory) -> Harness:
    settings = test_kafka_settings(isolated_broker.bootstrap_servers, send_timeout_s=SEND_TIMEOUT_S)
    return await make_harness(settings)


class TestBrokerFrozen:
    async def test_events_wait_in_the_outbox_and_are_applied_once_after_resume(
        self, isolated_broker: TansuBroker, isolated_harness: Harness
    ) -> None:
        harness = isolated_harness
        relay = await harness.relay(TimedRelay)
        assert isinstance(relay, TimedRelay)
        runner = await harness.runner()
        warm_up = await harness.write([tracked("warm-up", 0)])
        await until(lambda: runner.applied == 1, timeout=30, what="the warm-up event")

        isolated_broker.pause()
        try:
            paused_at = time.monotonic()
            written = await harness.write(
                [tracked(customer, seq) for seq in range(10) for customer in customers(5)]
            )
            backlog_while_paused: list[tuple[int, float]] = []
            while time.monotonic() - paused_at < 5.0:
                backlog_while_paused.append(await relay.backlog())
                await asyncio.sleep(0.25)
            failures_while_paused = relay.failures
        finally:
            isolated_broker.resume()
        resumed_at = time.monotonic()

        await until(lambda: harness.has_effects(51), timeout=60, what="51 effects")
        drain_seconds = time.monotonic() - resumed_at
        await until(harness.backlog_is_empty, timeout=30, what="an empty outbox")
        await asyncio.sleep(1.0)  # late copies from timed-out attempts would show here

        assert len(written) == 50
        # Each event's row, and the record of each customer's data key minted with it.
        assert {count for count, _ in backlog_while_paused} == {50 + with_key_records(written)}
        oldest_age = backlog_while_paused[-1][1]
        assert 4.0 < oldest_age < 10.0
        assert failures_while_paused >= 2
        failed = [seconds for seconds, ok in relay.attempts if not ok]
        assert failed and max(failed) < 2 * SEND_TIMEOUT_S + 0.5, relay.attempts
        effects = await harness.effects()
        assert len(effects) == len({row.event_id for row in effects}) == 51
        assert {row.event_id for row in effects} == {e.id for e in warm_up + written}
        assert runner.applied == 51
        print(
            f"broker frozen 5s: {failures_while_paused} bounded publish attempts failed "
            f"(longest {max(failed):.2f}s), drained 50 events {drain_seconds:.2f}s after "
            f"resume, {runner.duplicates} duplicate deliveries skipped"
        )


class TestDuplicateDelivery:
    async def test_the_same_envelope_delivered_twice_is_applied_once(
        self, harness: Harness
    ) -> None:
        customer = customers(1)[0]
        runner = await harness.runner()
        producer = await harness.producer("replayer")
        twice = encode(Envelope(data=tracked(customer, 0), source="/services/upstream"))
        once = encode(Envelope(data=tracked(customer, 1), source="/services/upstream"))
        for message in (twice, twice, once):
            await producer.send_and_wait(
                harness.topic, message.value, key=message.key, headers=message.headers
            )

        await until(
            lambda: runner.applied + runner.duplicates == 3, timeout=30, what="three deliveries"
        )
        await asyncio.sleep(0.5)

        assert (runner.applied, runner.duplicates) == (2, 1)
        assert [row.seq for row in await harness.effects()] == [0, 1]
        assert len(await harness.inbox_ids()) == 2


class PoisonError(RuntimeError):
    pass


class TestPoisonMessage:
    async def test_a_failing_event_goes_to_the_dead_letter_topic_and_later_ones_apply(
        self, harness: Harness
    ) -> None:
        customer = customers(1)[0]
        calls_on_poison = 0

        async def fail_on_seq_2(
            event: InteractionTracked, envelope: Envelope, session: AsyncSession
        ) -> None:
            nonlocal calls_on_poison
            await record_effect(event, envelope, session)
            if event.properties["seq"] == 2:
                calls_on_poison += 1
                raise PoisonError("seq 2 cannot be applied")

        handlers: HandlerMap = {InteractionTracked: [fail_on_seq_2]}
        await harness.relay()
        written = await harness.write([tracked(customer, seq) for seq in range(6)])
        await harness.read_topic(harness.topic, 6)
        # All six come in one fetch. They share a transaction, which fails on seq 2 and is
        # rolled back; then each is applied alone, seq 2 with its own tries.
        runner = await harness.runner(handlers=handlers)

        await until(lambda: harness.has_effects(5), timeout=30, what="five effects")
        dead = await harness.read_topic(harness.dead_letter_topic, 1)

        assert len(dead) == 1
        headers = {name: value.decode() for name, value in dead[0].headers}
        assert headers["dlq_error_type"] == "PoisonError"
        assert headers["dlq_error_message"] == "seq 2 cannot be applied"
        assert headers["dlq_attempts"] == str(harness.settings.consumer_max_attempts)
        assert headers["dlq_original_topic"] == harness.topic
        assert headers["dlq_consumer_group"] == harness.group
        assert headers["ce_id"] == written[2].id
        assert dead[0].key == customer.encode()
        # A shared transaction tried seq 2 once before the tries of its own.
        batched = runner._records_per_transaction() > 1
        assert calls_on_poison == batched + harness.settings.consumer_max_attempts
        assert runner.dead_lettered == 1
        assert [row.seq for row in await harness.effects()] == [0, 1, 3, 4, 5]
        assert written[2].id not in await harness.inbox_ids()


class TestConsumerDatabaseOutage:
    async def test_events_wait_for_the_database_instead_of_going_to_the_dead_letters(
        self, harness: Harness
    ) -> None:
        await harness.relay()
        runner = await harness.runner()
        warm_up = await harness.write([tracked("warm-up", 0)])
        await until(lambda: runner.applied == 1, timeout=30, what="the warm-up event")

        async with harness.downstream.unavailable():
            written = await harness.write([tracked(c, 0) for c in customers(10)])
            await asyncio.sleep(3.0)  # the events reach the runner while its database is away
            applied_during_outage = runner.applied
        restored_at = time.monotonic()
        await until(lambda: harness.has_effects(11), timeout=30, what="11 effects")
        recovery_seconds = time.monotonic() - restored_at
        await asyncio.sleep(0.5)

        assert applied_during_outage == 1
        assert (runner.applied, runner.duplicates, runner.dead_lettered) == (11, 0, 0)
        effects = await harness.effects()
        assert sorted(row.event_id for row in effects) == sorted(e.id for e in warm_up + written)
        print(f"database back: 10 held events applied within {recovery_seconds:.2f}s")


class SimulatedCrash(Exception):
    pass


class TestRelayCrashAfterPublish:
    async def test_republished_events_are_skipped_by_the_inbox(self, harness: Harness) -> None:
        async def crash(rows: list[PendingMessage]) -> None:
            raise SimulatedCrash(f"relay died after publishing {len(rows)} rows")

        runner = await harness.runner()
        written = await harness.write(
            [tracked(customer, seq) for seq in range(4) for customer in customers(3)]
        )
        crashing = await harness.relay(after_publish=crash, start=False)
        with pytest.raises(SimulatedCrash):
            await crashing.publish_pending()
        # Published, never marked sent: the events and their customers' key records.
        assert await harness.backlog() == 12 + with_key_records(written)

        fresh = await harness.relay()
        await until(harness.backlog_is_empty, timeout=30, what="the fresh relay")
        await until(
            lambda: runner.applied + runner.duplicates == 24, timeout=30, what="24 deliveries"
        )
        records = await harness.read_topic(harness.topic, 24)
        await asyncio.sleep(0.5)

        assert len(records) == 24
        assert sorted(ce_id(r) for r in records) == sorted(2 * [e.id for e in written])
        assert fresh.published == 12 + with_key_records(written)  # key records go to their topic
        assert (runner.applied, runner.duplicates) == (12, 12)
        effects = await harness.effects()
        assert sorted(row.event_id for row in effects) == sorted(e.id for e in written)
        assert sorted(await harness.inbox_ids()) == sorted(e.id for e in written)


class CrashingRunner(ConsumerRunner):
    """Dies right after the transaction that reaches N applied events commits, before it
    records the offset.

    A dead process commits nothing more, so after the crash no offsets are handed to a commit
    (neither the fetch loop's nor the last one at stop).
    """

    def __init__(self, *, crash_after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._crash_after = crash_after
        self.crashed = asyncio.Event()

    async def _handle_records(self, partition: Any, records: list[Any]) -> None:
        await super()._handle_records(partition, records)
        if self.applied >= self._crash_after:
            self.crashed.set()
            await asyncio.Event().wait()  # hang until killed

    def _take_processed(self) -> dict[Any, Any]:
        offsets = super()._take_processed()
        return {} if self.crashed.is_set() else offsets


class TestConsumerCrashAfterApply:
    async def test_a_restarted_consumer_skips_what_was_applied_and_applies_the_rest(
        self, harness: Harness
    ) -> None:
        await harness.relay()
        written = await harness.write(
            [tracked(customer, seq) for seq in range(5) for customer in customers(4)]
        )
        records = await harness.read_topic(harness.topic, 20)
        # Small fetches, so the crash comes with events still to apply.
        harness.settings = harness.settings.model_copy(update={"consumer_max_records": 3})
        first = await harness.runner(CrashingRunner, crash_after=12)
        assert isinstance(first, CrashingRunner)
        await asyncio.wait_for(first.crashed.wait(), 30)
        await first.stop()  # the kill: the task is cancelled, no offset is committed
        applied_before = {row.event_id for row in await harness.effects()}
        committed = await harness.committed()
        # Applied, but at or after the committed offset: the group will deliver them again.
        redelivered = {
            ce_id(r) for r in records if r.offset >= (committed[r.partition] or 0)
        } & applied_before

        second = await harness.runner()
        await until(lambda: harness.has_effects(20), timeout=30, what="20 effects")
        await until(
            lambda: second.duplicates == len(redelivered), timeout=10, what="skipped duplicates"
        )
        await asyncio.sleep(0.5)

        assert len(records) == 20
        assert len(applied_before) == first.applied >= 12
        assert len(redelivered) >= 1  # at least the records in hand at the crash
        assert (second.applied, second.duplicates) == (20 - first.applied, len(redelivered))
        effects = await harness.effects()
        assert len(effects) == len({row.event_id for row in effects}) == 20
        assert {row.event_id for row in effects} == {e.id for e in written}
