"""The consumer runner's apply and record handling, on real databases, without a broker."""

import asyncio
import dataclasses
import random
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import RebalanceInProgressError, UnknownMemberIdError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope, KafkaMessage, encode
from rapport_events.consumer import (
    ConsumerRunner,
    ConsumerStuck,
    Handler,
    _PendingRuns,
    _Run,
    batch,
)
from rapport_events.db import SessionFactory, transaction
from rapport_events.inbox import InboxEntry
from rapport_events.settings import KafkaSettings
from rapport_events.testing.fakes import FakeProducer, FakeRecord
from rapport_events.types import CartUpdated, CustomerErased, InteractionTracked

SERVICE = "unit-tests"
TOPIC = "rapport.unit-events"
DLQ = f"{TOPIC}.dlq.{SERVICE}"
PARTITION = TopicPartition(TOPIC, 2)

# A service's own table, standing in for the handler's effect.
effects = Table(
    "unit_effects",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("note", String(255), nullable=False),
)


@pytest.fixture
async def sessions(event_engine: AsyncEngine, event_sessions: SessionFactory) -> SessionFactory:
    """The outbox and inbox tables plus the effects table."""
    async with event_engine.begin() as connection:
        await connection.run_sync(effects.metadata.create_all)
    return event_sessions


@pytest.fixture
def unit_settings() -> KafkaSettings:
    return KafkaSettings(
        topic=TOPIC,
        consumer_max_attempts=3,
        consumer_retry_backoff_s=0.001,
        send_timeout_s=2.0,
        consumer_transaction_max_s=30.0,  # batches here are cut by count, not by a slow machine
    )


class ServiceSettings:
    """What a service would pass as its `settings` dependency."""

    greeting = "hello"


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


RunnerFactory = Callable[..., ConsumerRunner]


@pytest.fixture
def make_runner(
    sessions: SessionFactory, unit_settings: KafkaSettings, producer: FakeProducer
) -> RunnerFactory:
    def make(handlers: dict[type, list[Handler]] | None = None, **overrides: Any) -> ConsumerRunner:
        values: dict[str, Any] = {
            "service": SERVICE,
            "settings": unit_settings,
            "session_factory": sessions,
            "handlers": handlers or {},
            "producer": producer,
            "dependencies": {"settings": ServiceSettings()},
            **overrides,
        }
        return ConsumerRunner(**values)

    return make


@pytest.fixture
def runner(make_runner: RunnerFactory) -> ConsumerRunner:
    return make_runner({InteractionTracked: [record_effect]})


async def record_effect(
    event: InteractionTracked, envelope: Envelope, session: AsyncSession
) -> None:
    await session.exec(insert(effects).values(event_id=envelope.id, note=event.name or ""))  # type: ignore[call-overload]


async def fail(event: InteractionTracked) -> None:
    raise ValueError(f"cannot handle {event.name}")


def tracked(name: str = "home", customer_id: str = "c-1") -> Envelope:
    return Envelope(
        data=InteractionTracked(customer_id=customer_id, kind="page", name=name),
        source="/services/profile",
    )


def record_of(message: KafkaMessage, offset: int = 0) -> FakeRecord:
    return FakeRecord(TOPIC, 2, offset, message.key, message.value, list(message.headers))


def sent_span_context() -> trace.SpanContext:
    """The context of a finished producer span, as a relay would have sent it."""
    with trace.get_tracer("tests").start_as_current_span("send") as send:
        return send.get_span_context()


def traced(envelope: Envelope, sent: trace.SpanContext) -> Envelope:
    """The envelope carrying `sent` as its W3C traceparent."""
    traceparent = f"00-{sent.trace_id:032x}-{sent.span_id:016x}-01"
    return dataclasses.replace(envelope, traceparent=traceparent)


def run_spans(exporter: InMemorySpanExporter, *sent: trace.SpanContext) -> list[Any]:
    """The processing spans linked to any of the `sent` producer spans."""
    ids = {context.span_id for context in sent}
    return [
        span
        for span in exporter.get_finished_spans()
        if span.name == f"process {TOPIC}" and ids & {link.context.span_id for link in span.links}
    ]


async def effect_notes(sessions: SessionFactory) -> list[str]:
    async with transaction(sessions) as session:
        result = await session.exec(select(effects.c.note).order_by(effects.c.id))  # type: ignore[call-overload]
        return [row[0] if isinstance(row, tuple) else row for row in result.all()]


async def inbox_ids(sessions: SessionFactory, consumer: str = SERVICE) -> list[str]:
    async with transaction(sessions) as session:
        result = await session.exec(
            select(InboxEntry.event_id).where(InboxEntry.consumer == consumer)
        )
        return list(result.all())


async def inbox_size(sessions: SessionFactory) -> int:
    async with transaction(sessions) as session:
        return int((await session.exec(select(func.count()).select_from(InboxEntry))).one())


class TestApply:
    async def test_the_effect_and_the_inbox_row_commit_together(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        envelope = tracked("home")

        assert await runner.apply(envelope, [record_effect]) is True

        assert await effect_notes(sessions) == ["home"]
        assert await inbox_ids(sessions) == [envelope.id]
        assert (runner.applied, runner.duplicates) == (1, 0)

    async def test_the_same_envelope_twice_is_applied_once(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        envelope = tracked("home")

        assert await runner.apply(envelope, [record_effect]) is True
        assert await runner.apply(envelope, [record_effect]) is False

        assert await effect_notes(sessions) == ["home"]
        assert (runner.applied, runner.duplicates) == (1, 1)

    async def test_each_consumer_group_applies_an_event_once_for_itself(
        self, make_runner: RunnerFactory, sessions: SessionFactory
    ) -> None:
        envelope = tracked("home")
        first, second = make_runner(), make_runner(service="another-service")

        assert await first.apply(envelope, [record_effect]) is True
        assert await second.apply(envelope, [record_effect]) is True

        assert await effect_notes(sessions) == ["home", "home"]
        assert await inbox_ids(sessions, "another-service") == [envelope.id]

    async def test_a_handler_that_raises_leaves_no_inbox_row_and_no_effect(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        envelope = tracked("broken")

        with pytest.raises(ValueError, match="cannot handle broken"):
            await runner.apply(envelope, [record_effect, fail])

        assert await effect_notes(sessions) == []
        assert await inbox_size(sessions) == 0
        assert runner.applied == 0
        # Not remembered as applied: a later delivery is applied in full.
        assert await runner.apply(envelope, [record_effect]) is True
        assert await effect_notes(sessions) == ["broken"]

    async def test_handlers_run_in_order_in_one_session(self, runner: ConsumerRunner) -> None:
        calls: list[tuple[str, AsyncSession]] = []

        async def first(session: AsyncSession) -> None:
            calls.append(("first", session))

        async def second(session: AsyncSession) -> None:
            calls.append(("second", session))

        await runner.apply(tracked(), [first, second])

        assert [name for name, _ in calls] == ["first", "second"]
        assert calls[0][1] is calls[1][1]


class TestDependencyInjection:
    """Handlers name what they need; the runner passes it by parameter name."""

    async def test_a_handler_gets_event_envelope_session_and_dependencies(
        self, runner: ConsumerRunner
    ) -> None:
        received: dict[str, Any] = {}

        async def handler(
            settings: ServiceSettings, event: InteractionTracked, envelope: Envelope
        ) -> None:
            received.update(settings=settings, event=event, envelope=envelope)

        envelope = tracked()
        await runner.apply(envelope, [handler])

        assert received["settings"].greeting == "hello"
        assert received["event"] is envelope.data
        assert received["envelope"] is envelope

    async def test_a_handler_may_ask_for_nothing(self, runner: ConsumerRunner) -> None:
        called: list[bool] = []

        async def handler() -> None:
            called.append(True)

        await runner.apply(tracked(), [handler])

        assert called == [True]

    async def test_an_unknown_name_is_a_type_error_and_nothing_is_applied(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        async def handler(event: InteractionTracked, mailer: object) -> None:
            raise AssertionError("must not be called")

        with pytest.raises(TypeError, match=r"unknown dependencies \['mailer'\]"):
            await runner.apply(tracked(), [handler])

        assert await inbox_size(sessions) == 0

    async def test_a_handler_of_the_map_asking_for_an_unknown_name_fails_the_start(
        self, make_runner: RunnerFactory
    ) -> None:
        async def handler(event: InteractionTracked, mailer: object) -> None:
            raise AssertionError("must not be called")

        async def on_runs(events: list[InteractionTracked], event: object) -> None:
            raise AssertionError("must not be called")

        with pytest.raises(TypeError, match=r"unknown dependencies \['mailer'\]"):
            make_runner({InteractionTracked: [handler]})
        with pytest.raises(TypeError, match=r"unknown dependencies \['event'\]"):
            make_runner({InteractionTracked: [batch(on_runs)]})
        assert make_runner({InteractionTracked: [handler]}, dependencies={"mailer": "smtp"})

    async def test_dependencies_are_per_runner(self, make_runner: RunnerFactory) -> None:
        runner = make_runner(dependencies={"mailer": "smtp"})
        got: list[object] = []

        async def handler(mailer: object) -> None:
            got.append(mailer)

        await runner.apply(tracked(), [handler])

        assert got == ["smtp"]


def dlq_headers(producer: FakeProducer) -> dict[str, str]:
    (message,) = [m for m in producer.sent if m.topic == DLQ]
    return {name: value.decode() for name, value in message.headers}


class TestHandleRecord:
    async def test_a_record_is_decoded_and_applied(
        self, runner: ConsumerRunner, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        envelope = tracked("pricing")

        await runner._handle_record(record_of(encode(envelope)))

        assert await effect_notes(sessions) == ["pricing"]
        assert await inbox_ids(sessions) == [envelope.id]
        assert producer.sent == []

    async def test_a_redelivered_record_is_skipped(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        record = record_of(encode(tracked("pricing")))

        await runner._handle_record(record)
        await runner._handle_record(record)

        assert await effect_notes(sessions) == ["pricing"]
        assert runner.duplicates == 1

    async def test_a_type_without_handlers_is_passed_over(
        self, runner: ConsumerRunner, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        erased = Envelope(data=CustomerErased(customer_id="c-1"), source="/services/profile")

        await runner._handle_record(record_of(encode(erased)))

        assert await inbox_size(sessions) == 0
        assert producer.sent == []

    async def test_a_transient_failure_is_retried(
        self, make_runner: RunnerFactory, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        attempts: list[int] = []

        async def flaky(
            event: InteractionTracked, envelope: Envelope, session: AsyncSession
        ) -> None:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionError("the CRM database blinked")
            await record_effect(event, envelope, session)

        runner = make_runner({InteractionTracked: [flaky]})
        await runner._handle_record(record_of(encode(tracked("retry"))))

        assert len(attempts) == 3
        assert await effect_notes(sessions) == ["retry"]
        assert producer.sent == []

    async def test_a_record_that_keeps_failing_goes_to_the_dead_letter_topic(
        self, make_runner: RunnerFactory, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        calls: list[int] = []

        async def always_fails(event: InteractionTracked) -> None:
            calls.append(1)
            raise ValueError(f"cannot handle {event.name}")

        runner = make_runner({InteractionTracked: [always_fails]})
        envelope = tracked("poison")
        message = encode(envelope)

        await runner._handle_record(record_of(message, offset=41))

        assert len(calls) == 3
        assert runner.dead_letter_topic == DLQ
        (dead,) = producer.sent
        assert (dead.topic, dead.key, dead.value) == (DLQ, message.key, message.value)
        headers = dlq_headers(producer)
        assert headers["dlq_error_type"] == "ValueError"
        assert headers["dlq_error_message"] == "cannot handle poison"
        assert headers["dlq_attempts"] == "3"
        assert headers["dlq_original_topic"] == TOPIC
        assert headers["dlq_original_partition"] == "2"
        assert headers["dlq_original_offset"] == "41"
        assert headers["dlq_consumer_group"] == SERVICE
        # The CloudEvent itself is intact, so it can be replayed as it was.
        assert dead.envelope().id == envelope.id
        assert runner.dead_lettered == 1
        assert await inbox_size(sessions) == 0

    async def test_the_consumer_moves_on_after_a_dead_letter(
        self, make_runner: RunnerFactory, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        async def fails_on_poison(
            event: InteractionTracked, envelope: Envelope, session: AsyncSession
        ) -> None:
            if event.name == "poison":
                raise ValueError("poison")
            await record_effect(event, envelope, session)

        runner = make_runner({InteractionTracked: [fails_on_poison]})

        for offset, name in enumerate(["before", "poison", "after"]):
            await runner._handle_record(record_of(encode(tracked(name)), offset))

        assert await effect_notes(sessions) == ["before", "after"]
        assert [m.topic for m in producer.sent] == [DLQ]

    @pytest.mark.parametrize(
        ("value", "drop_header"),
        [(b"this is not json", None), (b'{"customer_id": "c-1"}', None), (None, "ce_type")],
        ids=["not-json", "invalid-data", "missing-ce_type"],
    )
    async def test_an_undecodable_record_goes_to_the_dead_letter_topic(
        self,
        runner: ConsumerRunner,
        sessions: SessionFactory,
        producer: FakeProducer,
        value: bytes | None,
        drop_header: str | None,
    ) -> None:
        message = encode(tracked("garbled"))
        headers = [(n, v) for n, v in message.headers if n != drop_header]
        record = FakeRecord(TOPIC, 0, 7, message.key, value or message.value, headers)

        await runner._handle_record(record)

        headers_out = dlq_headers(producer)
        assert headers_out["dlq_error_type"] == "DecodeError"
        assert headers_out["dlq_attempts"] == "1"
        assert headers_out["dlq_error_message"]
        assert producer.sent[0].value == record.value
        assert await inbox_size(sessions) == 0
        assert runner.dead_lettered == 1

    async def test_the_dead_letter_waits_for_the_broker(
        self, make_runner: RunnerFactory, producer: FakeProducer
    ) -> None:
        runner = make_runner({InteractionTracked: [fail]})
        producer.fail_next = 2  # the broker is away for the first two dead-letter sends

        await runner._handle_record(record_of(encode(tracked("poison"))))

        assert [m.topic for m in producer.sent] == [DLQ]
        assert runner.dead_lettered == 1

    async def test_processing_continues_the_producers_trace(
        self, runner: ConsumerRunner, span_exporter: InMemorySpanExporter
    ) -> None:
        with trace.get_tracer("tests").start_as_current_span("send") as send:
            context = send.get_span_context()
            traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
        envelope = Envelope(
            data=tracked().data, source="/services/profile", traceparent=traceparent
        )

        await runner._handle_record(record_of(encode(envelope)))

        (process,) = [
            span
            for span in span_exporter.get_finished_spans()
            if span.context.trace_id == context.trace_id and span.name == f"process {TOPIC}"
        ]
        assert process.parent is not None and process.parent.span_id == context.span_id
        assert process.kind == trace.SpanKind.CONSUMER
        assert [link.context.span_id for link in process.links] == [context.span_id]
        assert process.attributes is not None
        assert process.attributes["messaging.consumer.group.name"] == SERVICE
        assert process.attributes["messaging.message.id"] == envelope.id


def commits_of(engine: AsyncEngine) -> list[int]:
    """A list that grows by one on every database commit."""
    seen: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _connection: seen.append(1))
    return seen


class TestHandleRecordsTogether:
    async def test_a_fetched_batch_is_applied_in_one_commit(
        self, runner: ConsumerRunner, sessions: SessionFactory, event_engine: AsyncEngine
    ) -> None:
        envelopes = [tracked(f"page-{n}") for n in range(5)]
        records = [record_of(encode(e), offset=n) for n, e in enumerate(envelopes)]
        commits = commits_of(event_engine)

        await runner._handle_records(PARTITION, records)

        assert len(commits) == 1
        assert await effect_notes(sessions) == [f"page-{n}" for n in range(5)]
        assert sorted(await inbox_ids(sessions)) == sorted(e.id for e in envelopes)
        assert (runner.applied, runner.duplicates) == (5, 0)
        assert runner._processed == {PARTITION: 5}

    async def test_a_spent_time_budget_commits_and_goes_on_in_a_new_transaction(
        self,
        make_runner: RunnerFactory,
        unit_settings: KafkaSettings,
        sessions: SessionFactory,
        event_engine: AsyncEngine,
    ) -> None:
        no_time = unit_settings.model_copy(update={"consumer_transaction_max_s": 0.0})
        runner = make_runner({InteractionTracked: [record_effect]}, settings=no_time)
        records = [record_of(encode(tracked(f"page-{n}")), offset=n) for n in range(3)]
        commits = commits_of(event_engine)

        await runner._handle_records(PARTITION, records)

        assert len(commits) == 3
        assert await effect_notes(sessions) == ["page-0", "page-1", "page-2"]
        assert runner._processed == {PARTITION: 3}

    async def test_a_duplicate_inside_one_batch_is_applied_once(
        self, runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        envelope = tracked("twice")
        message = encode(envelope)

        await runner._handle_records(PARTITION, [record_of(message, 0), record_of(message, 1)])

        assert await effect_notes(sessions) == ["twice"]
        assert (runner.applied, runner.duplicates) == (1, 1)

    async def test_a_failing_event_rolls_the_batch_back_and_the_rest_apply_in_order(
        self, make_runner: RunnerFactory, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        async def fail_on_poison(
            event: InteractionTracked, envelope: Envelope, session: AsyncSession
        ) -> None:
            if event.name == "poison":
                raise ValueError("poison")
            await record_effect(event, envelope, session)

        runner = make_runner({InteractionTracked: [fail_on_poison]})
        names = ["a", "b", "poison", "c"]
        records = [record_of(encode(tracked(n)), offset=i) for i, n in enumerate(names)]

        await runner._handle_records(PARTITION, records)

        assert await effect_notes(sessions) == ["a", "b", "c"]
        assert (runner.applied, runner.duplicates, runner.dead_lettered) == (3, 0, 1)
        assert dlq_headers(producer)["dlq_error_message"] == "poison"
        assert runner._processed == {PARTITION: 4}

    async def test_an_undecodable_record_in_a_batch_goes_to_the_dead_letters_alone(
        self, runner: ConsumerRunner, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        good = encode(tracked("good"))
        broken = FakeRecord(TOPIC, 2, 1, good.key, b"{not json", list(good.headers))

        await runner._handle_records(PARTITION, [record_of(good, 0), broken])

        assert await effect_notes(sessions) == ["good"]
        assert runner.dead_lettered == 1
        assert dlq_headers(producer)["dlq_original_offset"] == "1"


@pytest.fixture
def slow_commits(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Commits land, then their callers wait 0.3 s: a cancel arrives after the database said yes."""
    landed = asyncio.Event()
    real_commit = AsyncSession.commit

    async def commit_then_wait(self: AsyncSession) -> None:
        await real_commit(self)
        landed.set()
        await asyncio.sleep(0.3)

    monkeypatch.setattr(AsyncSession, "commit", commit_then_wait)
    return landed


class TestCancelDuringCommit:
    """Stopping a consumer while its commit is in flight still counts what committed."""

    async def test_a_single_apply_counts_its_committed_event(
        self, runner: ConsumerRunner, sessions: SessionFactory, slow_commits: asyncio.Event
    ) -> None:
        task = asyncio.create_task(
            runner._handle_records(PARTITION, [record_of(encode(tracked()))])
        )
        await slow_commits.wait()
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task

        assert await effect_notes(sessions) == ["home"]
        assert (runner.applied, runner.duplicates) == (1, 0)

    async def test_a_shared_transaction_counts_every_committed_event(
        self, runner: ConsumerRunner, sessions: SessionFactory, slow_commits: asyncio.Event
    ) -> None:
        records = [record_of(encode(tracked(f"page-{n}")), offset=n) for n in range(4)]
        task = asyncio.create_task(runner._handle_records(PARTITION, records))
        await slow_commits.wait()
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task

        assert len(await effect_notes(sessions)) == 4
        assert (runner.applied, runner.duplicates) == (4, 0)
        # The offsets stay behind: redelivery finds the events in the inbox.
        assert runner._processed == {}


async def recurse_forever(event: InteractionTracked) -> None:
    def down(depth: int) -> int:
        return down(depth + 1) + 1

    down(0)


class TestPoisonRecords:
    """Whatever a record raises, it goes to the dead letters alone and the consumer goes on."""

    async def test_a_value_nested_100000_deep_is_dead_lettered_before_parsing(
        self, runner: ConsumerRunner, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        good = encode(tracked("after"))
        deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
        poison = FakeRecord(TOPIC, 2, 0, good.key, deep, list(good.headers))

        await runner._handle_records(PARTITION, [poison, record_of(good, 1)])

        headers = dlq_headers(producer)
        assert headers["dlq_error_type"] == "DecodeError"
        assert "nests 100000 deep" in headers["dlq_error_message"]
        assert headers["dlq_original_offset"] == "0"
        assert await effect_notes(sessions) == ["after"]

    async def test_a_handler_raising_recursion_error_is_dead_lettered(
        self, make_runner: RunnerFactory, sessions: SessionFactory, producer: FakeProducer
    ) -> None:
        runner = make_runner({InteractionTracked: [recurse_forever]})

        await runner._handle_record(record_of(encode(tracked("deep")), offset=3))

        assert dlq_headers(producer)["dlq_error_type"] == "RecursionError"
        assert runner.dead_lettered == 1
        assert await inbox_size(sessions) == 0

    async def test_an_exception_outside_decoding_and_handlers_is_dead_lettered(
        self,
        runner: ConsumerRunner,
        producer: FakeProducer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def broken_span(*_: Any) -> Any:
            raise MemoryError("no room for this record")

        monkeypatch.setattr(runner, "_process_span", broken_span)

        await runner._handle_record(record_of(encode(tracked("huge")), offset=5))

        assert dlq_headers(producer)["dlq_error_type"] == "MemoryError"
        assert runner.dead_lettered == 1


class OnePartitionMember:
    """A group member holding the one test partition."""

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}


class FailingCommitConsumer(OnePartitionMember):
    """A group member the broker has forgotten: fetches answer, every commit fails."""

    def __init__(self) -> None:
        self.stopped = False

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[FakeRecord]]:
        return {PARTITION: [record_of(encode(tracked("x")), offset=0)]}

    async def commit(self, _offsets: Any) -> None:
        raise UnknownMemberIdError()

    async def stop(self) -> None:
        self.stopped = True


class OnceFailingCommitConsumer(OnePartitionMember):
    """A member whose first commit fails (a rebalance under way) and later ones succeed."""

    def __init__(self) -> None:
        self.attempts: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.attempts.append({tp: meta.offset for tp, meta in offsets.items()})
        if len(self.attempts) == 1:
            raise RebalanceInProgressError()


class TestRejoin:
    async def test_a_member_whose_commits_keep_failing_leaves_for_a_fresh_one(
        self, runner: ConsumerRunner
    ) -> None:
        forgotten = FailingCommitConsumer()
        runner._consumer = forgotten  # type: ignore[assignment]

        with pytest.raises(ConsumerStuck):
            await asyncio.wait_for(runner._consume(), 10)

        assert forgotten.stopped
        assert runner.kafka_consumer is None  # the next start makes a new member


class TestCommitRetry:
    async def test_offsets_a_failed_commit_held_are_committed_next_time(
        self, runner: ConsumerRunner
    ) -> None:
        member = OnceFailingCommitConsumer()
        runner._consumer = member  # type: ignore[assignment]
        runner._processed = {PARTITION: 4}

        await runner.commit_processed()
        await runner.commit_processed()

        assert member.attempts == [{PARTITION: 4}, {PARTITION: 4}]
        assert runner._processed == {}


class TestConsumerGroup:
    def test_the_group_is_the_service_unless_set(self, make_runner: RunnerFactory) -> None:
        assert make_runner().group_id == SERVICE
        named = make_runner(settings=KafkaSettings(topic=TOPIC, consumer_group="replay-7"))
        assert (named.group_id, named.dead_letter_topic) == ("replay-7", DLQ)


class BatchCalls:
    """Records each call of a batch handler (a label per event), and writes its effects (a
    note per event) with one statement."""

    def __init__(
        self,
        label: Callable[[Any], str] = lambda event: event.name or "",
        note: Callable[[Any], str] | None = None,
    ) -> None:
        self.calls: list[list[str]] = []
        self._label = label
        self._note = note or label

    async def __call__(
        self, events: list[Any], envelopes: list[Envelope], session: AsyncSession
    ) -> None:
        self.calls.append([self._label(event) for event in events])
        rows = [{"event_id": e.id, "note": self._note(e.data)} for e in envelopes]
        await session.exec(insert(effects), params=rows)  # type: ignore[call-overload]


def cart_calls() -> BatchCalls:
    """A second batched type: labels each call by cart id, notes `cart <id>`."""
    return BatchCalls(label=lambda event: event.cart_id, note=lambda event: f"cart {event.cart_id}")


def cart(cart_id: str, customer_id: str = "c-1") -> Envelope:
    return Envelope(
        data=CartUpdated(customer_id=customer_id, cart_id=cart_id, action="cart_viewed"),
        source="/services/profile",
    )


async def note_erasure(event: CustomerErased, session: AsyncSession) -> None:
    await session.exec(
        insert(effects).values(event_id="erased", note=f"erased {event.customer_id}")
    )  # type: ignore[call-overload]


class TestBatchHandlers:
    """A batch handler takes the run of its type a fetch brought, once per run, in log order."""

    @pytest.fixture
    def batch_calls(self) -> BatchCalls:
        return BatchCalls()

    @pytest.fixture
    def batch_runner(self, make_runner: RunnerFactory, batch_calls: BatchCalls) -> ConsumerRunner:
        return make_runner(
            {InteractionTracked: [batch(batch_calls)], CustomerErased: [note_erasure]}
        )

    async def test_a_run_of_one_type_is_one_call_in_log_order(
        self, batch_runner: ConsumerRunner, batch_calls: BatchCalls, sessions: SessionFactory
    ) -> None:
        records = [record_of(encode(tracked(f"p{n}")), n) for n in range(5)]

        await batch_runner._handle_records(PARTITION, records)

        assert batch_calls.calls == [["p0", "p1", "p2", "p3", "p4"]]
        assert await effect_notes(sessions) == ["p0", "p1", "p2", "p3", "p4"]
        assert batch_runner.applied == 5
        assert len(await inbox_ids(sessions)) == 5

    async def test_a_run_from_one_trace_continues_it(
        self, batch_runner: ConsumerRunner, span_exporter: InMemorySpanExporter
    ) -> None:
        send = sent_span_context()
        records = [record_of(encode(traced(tracked(f"p{n}"), send)), n) for n in range(3)]

        await batch_runner._handle_records(PARTITION, records)

        (process,) = run_spans(span_exporter, send)
        assert process.context.trace_id == send.trace_id
        assert process.parent is not None and process.parent.span_id == send.span_id
        assert process.attributes is not None
        assert process.attributes["messaging.batch.message_count"] == 3

    async def test_a_run_from_several_traces_starts_its_own_linked_to_each(
        self, batch_runner: ConsumerRunner, span_exporter: InMemorySpanExporter
    ) -> None:
        sends = [sent_span_context() for _ in range(2)]
        records = [record_of(encode(traced(tracked(f"p{n}"), s)), n) for n, s in enumerate(sends)]

        await batch_runner._handle_records(PARTITION, records)

        (process,) = run_spans(span_exporter, *sends)
        assert process.parent is None
        assert process.context.trace_id not in {s.trace_id for s in sends}
        assert [link.context.span_id for link in process.links] == [s.span_id for s in sends]

    async def test_another_type_between_splits_the_run_and_keeps_the_order(
        self, batch_runner: ConsumerRunner, batch_calls: BatchCalls, sessions: SessionFactory
    ) -> None:
        erased = Envelope(data=CustomerErased(customer_id="c-1"), source="/services/profile")
        messages = [
            encode(tracked("a")),
            encode(tracked("b")),
            encode(erased),
            encode(tracked("c")),
        ]

        await batch_runner._handle_records(
            PARTITION, [record_of(m, offset) for offset, m in enumerate(messages)]
        )

        assert batch_calls.calls == [["a", "b"], ["c"]]
        assert await effect_notes(sessions) == ["a", "b", "erased c-1", "c"]

    async def test_interleaved_types_of_different_customers_make_one_run_per_type(
        self, make_runner: RunnerFactory, batch_calls: BatchCalls, sessions: SessionFactory
    ) -> None:
        carts = cart_calls()
        runner = make_runner(
            {InteractionTracked: [batch(batch_calls)], CartUpdated: [batch(carts)]}
        )
        messages = [
            encode(tracked(f"p{n}", customer_id=f"c-{n}") if n % 2 else cart(f"k{n}", f"c-{n}"))
            for n in range(10)
        ]

        await runner._handle_records(PARTITION, [record_of(m, n) for n, m in enumerate(messages)])

        assert batch_calls.calls == [["p1", "p3", "p5", "p7", "p9"]]
        assert carts.calls == [["k0", "k2", "k4", "k6", "k8"]]
        assert runner.applied == 10

    async def test_a_customer_crossing_types_applies_the_run_before_and_keeps_order(
        self, make_runner: RunnerFactory, batch_calls: BatchCalls, sessions: SessionFactory
    ) -> None:
        carts = cart_calls()
        runner = make_runner(
            {InteractionTracked: [batch(batch_calls)], CartUpdated: [batch(carts)]}
        )
        messages = [
            encode(tracked("a", "c-1")),
            encode(tracked("b", "c-2")),
            encode(cart("x", "c-1")),  # c-1's "a" must be applied before this
            encode(tracked("c", "c-3")),  # nothing of c-3 before: it joins the first run
            encode(tracked("d", "c-1")),  # and "x" before this
        ]

        await runner._handle_records(PARTITION, [record_of(m, n) for n, m in enumerate(messages)])

        assert batch_calls.calls == [["a", "b", "c"], ["d"]]
        assert carts.calls == [["x"]]
        notes = await effect_notes(sessions)
        assert [n for n in notes if n in ("a", "cart x", "d")] == ["a", "cart x", "d"]

    async def test_random_interleavings_keep_every_customers_order_in_long_runs(
        self, make_runner: RunnerFactory, batch_calls: BatchCalls, sessions: SessionFactory
    ) -> None:
        carts = cart_calls()
        runner = make_runner(
            {
                InteractionTracked: [batch(batch_calls)],
                CartUpdated: [batch(carts)],
                CustomerErased: [note_erasure],
            }
        )
        rng = random.Random(12)
        expected: dict[str, list[str]] = {}
        messages = []
        for n in range(1500):
            customer = f"c-{rng.randrange(200)}"
            roll = rng.random()
            if roll < 0.002:
                envelope = Envelope(data=CustomerErased(customer_id=customer), source="/s/profile")
                note = f"erased {customer}"
            elif roll < 0.5:
                envelope, note = tracked(f"t{n}", customer), f"t{n}"
            else:
                envelope, note = cart(f"{n}", customer), f"cart {n}"
            expected.setdefault(customer, []).append(note)
            messages.append(encode(envelope))
        records = [record_of(m, n) for n, m in enumerate(messages)]

        for first in range(0, len(records), 500):
            await runner._handle_records(PARTITION, records[first : first + 500])

        notes = await effect_notes(sessions)
        owner = {note: customer for customer, mine in expected.items() for note in mine}
        applied: dict[str, list[str]] = {}
        for note in notes:
            applied.setdefault(owner[note], []).append(note)
        assert applied == expected
        calls = len(batch_calls.calls) + len(carts.calls)
        types = [dict(m.headers)["ce_type"] for m in messages]
        type_changes = sum(1 for a, b in zip(types, types[1:], strict=False) if a != b)
        assert runner.applied == 1500
        assert calls * 5 < type_changes  # split at each type change, it would be ~750 calls

    async def test_the_same_2000_events_twice_apply_once_each_in_order_per_customer(
        self, batch_runner: ConsumerRunner, sessions: SessionFactory
    ) -> None:
        messages = [encode(tracked(f"{n:04d}", customer_id=f"c-{n % 7}")) for n in range(2000)]
        records = [record_of(m, offset) for offset, m in enumerate(messages)]
        twice = records + [record_of(m, 2000 + offset) for offset, m in enumerate(messages)]

        for first in range(0, len(twice), 500):
            await batch_runner._handle_records(PARTITION, twice[first : first + 500])

        notes = await effect_notes(sessions)
        assert sorted(notes) == [f"{n:04d}" for n in range(2000)]
        for customer in range(7):
            mine = [note for note in notes if int(note) % 7 == customer]
            assert mine == sorted(mine)
        assert (batch_runner.applied, batch_runner.duplicates) == (2000, 2000)

    async def test_a_duplicate_inside_one_run_is_applied_once(
        self, batch_runner: ConsumerRunner, batch_calls: BatchCalls
    ) -> None:
        message = encode(tracked("once"))

        await batch_runner._handle_records(
            PARTITION, [record_of(message, 0), record_of(message, 1)]
        )

        assert batch_calls.calls == [["once"]]
        assert (batch_runner.applied, batch_runner.duplicates) == (1, 1)

    async def test_one_poison_record_in_a_batch_goes_to_the_dead_letters_alone(
        self,
        batch_runner: ConsumerRunner,
        sessions: SessionFactory,
        producer: FakeProducer,
    ) -> None:
        good = [encode(tracked(f"g{n}")) for n in range(6)]
        poison = FakeRecord(TOPIC, 2, 3, good[0].key, b'{"customer_id": 7}', list(good[0].headers))
        records = [record_of(m, n if n < 3 else n + 1) for n, m in enumerate(good)]
        records.insert(3, poison)

        await batch_runner._handle_records(PARTITION, records)

        assert sorted(await effect_notes(sessions)) == [f"g{n}" for n in range(6)]
        assert [m.topic for m in producer.sent] == [DLQ]
        assert dlq_headers(producer)["dlq_original_offset"] == "3"

    async def test_a_single_record_reaches_a_batch_handler_as_a_run_of_one(
        self, batch_runner: ConsumerRunner, batch_calls: BatchCalls
    ) -> None:
        await batch_runner._handle_record(record_of(encode(tracked("alone"))))

        assert batch_calls.calls == [["alone"]]


keyed_types = st.lists(
    st.tuples(st.sampled_from([b"c-1", b"c-2", b"c-3", b"c-4", None]), st.sampled_from("ABC")),
    max_size=60,
)


def pending_runs_of(records: list[tuple[bytes | None, str]]) -> list[_Run]:
    runs = _PendingRuns()
    for offset, (key, event_type) in enumerate(records):
        record = FakeRecord(TOPIC, 0, offset, key, b"", [])
        runs.add(event_type, record, {}, None)  # type: ignore[arg-type]
    return runs.take_all()


class TestPendingRuns:
    @settings(max_examples=300, deadline=None)
    @given(records=keyed_types)
    def test_runs_in_order_keep_each_customers_log_order(
        self, records: list[tuple[bytes | None, str]]
    ) -> None:
        runs = pending_runs_of(records)
        applied = [record for run in runs for record in run.records]
        assert sorted(record.offset for record in applied) == list(range(len(records)))
        for run in runs:
            assert {records[record.offset][1] for record in run.records} == {run.type}
        for key in {key for key, _ in records}:
            offsets = [record.offset for record in applied if record.key == key]
            assert offsets == sorted(offsets), key

    def test_interleaved_types_of_distinct_customers_make_one_run_per_type(self) -> None:
        records = [(f"c-{n}".encode(), "AB"[n % 2]) for n in range(500)]
        runs = pending_runs_of(records)
        assert [(run.type, len(run.records)) for run in runs] == [("A", 250), ("B", 250)]

    def test_a_customer_switching_types_starts_a_later_run_only_when_needed(self) -> None:
        records = [(b"c-1", "A"), (b"c-2", "B"), (b"c-1", "B"), (b"c-2", "A"), (b"c-3", "A")]
        runs = pending_runs_of(records)
        # c-1's B must follow its A (run 0): it joins the B run after it (run 1); c-2's A
        # must follow its B (run 1): a new A run (run 2); c-3 has no earlier event: run 0.
        assert [(run.type, [r.offset for r in run.records]) for run in runs] == [
            ("A", [0, 4]),
            ("B", [1, 2]),
            ("A", [3]),
        ]
