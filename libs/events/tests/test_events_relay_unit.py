"""The outbox and its relay on real SQLite and PostgreSQL, with an in-memory producer."""

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from aiokafka.partitioner import murmur2
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update

from rapport_events import outbox
from rapport_events.base import utcnow
from rapport_events.codec import Envelope, decode, encode
from rapport_events.db import SessionFactory, create_engine, session_factory, transaction
from rapport_events.kafka import PRODUCER_HEADROOM_BYTES, create_producer
from rapport_events.observability import outbox_backlog, outbox_parked
from rapport_events.outbox import EventTooLarge, OutboxMessage
from rapport_events.relay import _PENDING_ORDER, OutboxRelay, PendingMessage, is_permanent
from rapport_events.runtime import EventRuntime
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC, KafkaSettings
from rapport_events.testing.fakes import FakeProducer
from rapport_events.testing.harness import until
from rapport_events.types import InteractionTracked

SOURCE = "/services/profile"


def page_view(customer_id: str, seq: int) -> InteractionTracked:
    return InteractionTracked(
        customer_id=customer_id, kind="page", name=f"page {seq}", url=f"https://shop.example/{seq}"
    )


@pytest.fixture(autouse=True)
def unsealed() -> Iterator[None]:
    """The outbox and relay mechanics on plain events (sealing: test_events_shredding)."""
    outbox.configure(KafkaSettings(seal_personal_fields=False))
    yield
    outbox.configure(KafkaSettings())


def settings(**overrides: Any) -> KafkaSettings:
    return KafkaSettings(**{"send_timeout_s": 2.0, "seal_personal_fields": False, **overrides})


async def write(sessions: SessionFactory, *events: InteractionTracked) -> list[Envelope]:
    """One unit of work adding `events` to the outbox, as a service function would."""
    async with transaction(sessions) as session:
        return [outbox.add(session, event, source=SOURCE) for event in events]


async def rows(sessions: SessionFactory) -> list[OutboxMessage]:
    async with transaction(sessions) as session:
        result = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(result.all())


def ids_of(traceparent: str) -> tuple[int, int]:
    """(trace id, parent span id) of a W3C traceparent header."""
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


def sent_ids(producer: FakeProducer) -> list[str]:
    return [envelope.id for envelope in producer.envelopes()]


class TestOutboxAdd:
    async def test_rows_are_written_on_the_callers_session(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-2", 2))

        stored = await rows(event_sessions)
        assert [row.event_id for row in stored] == [envelope.id for envelope in written]
        first = stored[0]
        assert first.event_type == InteractionTracked.TYPE
        assert first.topic == CUSTOMER_EVENTS_TOPIC
        assert first.key == "c-1"
        assert first.sent_at is None
        assert first.attempts == 0
        headers = dict(first.headers)
        assert headers["ce_id"] == written[0].id
        assert headers["ce_type"] == InteractionTracked.TYPE
        assert headers["ce_source"] == SOURCE
        assert headers["ce_subject"] == "c-1"
        stored_envelope = decode(first.value, [(n, v.encode()) for n, v in first.headers])
        assert stored_envelope == written[0]

    async def test_nothing_is_visible_after_rollback(self, event_sessions: SessionFactory) -> None:
        async with event_sessions() as session, session.begin():
            outbox.add(session, page_view("c-1", 1), source=SOURCE)
            await session.flush()
            await session.rollback()

        with pytest.raises(RuntimeError):
            async with transaction(event_sessions) as session:
                outbox.add(session, page_view("c-1", 2), source=SOURCE)
                raise RuntimeError("the use case failed after writing its event")

        assert await rows(event_sessions) == []

    async def test_a_topic_and_envelope_fields_can_be_given(
        self, event_sessions: SessionFactory
    ) -> None:
        async with transaction(event_sessions) as session:
            envelope = outbox.add(
                session, page_view("c-1", 1), source=SOURCE, topic="other.topic", id="fixed-id"
            )

        (row,) = await rows(event_sessions)
        assert (row.topic, row.event_id, envelope.id) == ("other.topic", "fixed-id", "fixed-id")

    async def test_a_commit_with_outbox_rows_wakes_the_relay(
        self, event_engine: AsyncEngine
    ) -> None:
        woken: list[bool] = []
        sessions = session_factory(event_engine, on_outbox_commit=lambda: woken.append(True))

        async with transaction(sessions) as session:
            pass  # a unit of work without events
        assert woken == []

        with pytest.raises(RuntimeError):
            async with transaction(sessions) as session:
                outbox.add(session, page_view("c-1", 1), source=SOURCE)
                raise RuntimeError
        assert woken == []

        async with transaction(sessions) as session:
            outbox.add(session, page_view("c-1", 2), source=SOURCE)
        assert woken == [True]


class TestOutboxAddAll:
    async def test_rows_follow_what_the_session_holds_in_order_with_the_trace(
        self, event_sessions: SessionFactory, span_exporter: InMemorySpanExporter
    ) -> None:
        events = [page_view(f"c-{seq % 3}", seq) for seq in range(5)]
        with trace.get_tracer("tests").start_as_current_span("POST /v1/batch") as request:
            async with transaction(event_sessions) as session:
                before = outbox.add(session, page_view("c-9", 0), source=SOURCE)
                written = await outbox.add_all(session, events, source=SOURCE, topic="t.batch")
                after = outbox.add(session, page_view("c-9", 9), source=SOURCE)
        context = request.get_span_context()

        stored = await rows(event_sessions)
        assert [row.event_id for row in stored] == [e.id for e in [before, *written, after]]
        assert [row.topic for row in stored[1:-1]] == ["t.batch"] * 5
        for row, envelope in zip(stored[1:-1], written, strict=True):
            assert (row.key, row.sent_at, row.attempts) == (envelope.subject, None, 0)
            assert decode(row.value, [(n, v.encode()) for n, v in row.headers]) == envelope
            assert ids_of(dict(row.headers)["traceparent"]) == (context.trace_id, context.span_id)

    async def test_a_commit_wakes_the_relay_and_nothing_is_written_for_no_events(
        self, event_engine: AsyncEngine
    ) -> None:
        woken: list[bool] = []
        sessions = session_factory(event_engine, on_outbox_commit=lambda: woken.append(True))

        async with transaction(sessions) as session:
            assert await outbox.add_all(session, [], source=SOURCE) == []
        assert (woken, await rows(sessions)) == ([], [])

        async with transaction(sessions) as session:
            await outbox.add_all(session, [page_view("c-1", 1)], source=SOURCE)
        assert woken == [True]


def sent_of(producer: FakeProducer, key: str) -> list[str]:
    """The event ids sent with `key`, in the order the broker got them."""
    return [m.envelope().id for m in producer.sent if m.key == key.encode()]


class TestPublishPending:
    async def test_sends_in_id_order_and_deletes_what_was_sent(
        self, event_sessions: SessionFactory
    ) -> None:
        written = []
        for seq in range(5):
            written += await write(event_sessions, page_view(f"c-{seq % 2}", seq))
        producer = FakeProducer()
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        assert await relay.publish_pending() == 5

        assert sent_ids(producer) == [envelope.id for envelope in written]
        assert await rows(event_sessions) == []
        assert relay.published == 5
        first = producer.sent[0]
        assert (first.topic, first.key) == (CUSTOMER_EVENTS_TOPIC, b"c-0")
        assert [envelope.data for envelope in producer.envelopes()] == [e.data for e in written]

    async def test_sent_rows_are_not_sent_again(self, event_sessions: SessionFactory) -> None:
        await write(event_sessions, page_view("c-1", 1))
        producer = FakeProducer()
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]
        await relay.publish_pending()

        assert await relay.publish_pending() == 0
        assert len(producer.sent) == 1

    async def test_publishes_in_batches(self, event_sessions: SessionFactory) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(5)))
        producer = FakeProducer()
        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(relay_batch_size=2),
        )

        assert [await relay.publish_pending() for _ in range(4)] == [2, 2, 1, 0]
        assert sent_ids(producer) == [envelope.id for envelope in written]
        assert (await relay.backlog())[0] == 0

    async def test_stopping_finishes_marking_the_last_full_batch(
        self, event_sessions: SessionFactory
    ) -> None:
        await write(event_sessions, *(page_view("c-1", seq) for seq in range(4)))
        relay = OutboxRelay(
            event_sessions,
            FakeProducer(),  # type: ignore[arg-type]
            settings(relay_batch_size=2, relay_poll_interval_s=60),
        )
        relay.start()
        try:
            await until(lambda: relay.published == 4, timeout=10, what="four rows published")
        finally:
            await relay.stop()

        assert await rows(event_sessions) == []

    async def test_after_publish_sees_the_batch_before_it_is_marked(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-1", 2))
        seen: list[tuple[list[str], list[str]]] = []

        async def after_publish(batch: list[PendingMessage]) -> None:
            stored = [row.event_id for row in await rows(event_sessions) if row.sent_at is None]
            seen.append(([row.event_id for row in batch], stored))

        relay = OutboxRelay(
            event_sessions,
            FakeProducer(),  # type: ignore[arg-type]
            settings(),
            after_publish=after_publish,
        )
        await relay.publish_pending()

        ids = [envelope.id for envelope in written]
        assert seen == [(ids, ids)]

    async def test_backlog_counts_pending_rows(self, event_sessions: SessionFactory) -> None:
        relay = OutboxRelay(event_sessions, FakeProducer(), settings())  # type: ignore[arg-type]
        assert await relay.backlog() == (0, 0.0)

        await write(event_sessions, page_view("c-1", 1), page_view("c-2", 1))
        count, age = await relay.backlog()
        assert count == 2
        assert 0 <= age < 60

        await relay.publish_pending()
        assert await relay.backlog() == (0, 0.0)


class TestRecordBatches:
    """A round goes out as one record batch per partition, each key on its Kafka partition."""

    async def test_one_batch_per_partition_and_each_key_where_kafka_puts_it(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view(f"c-{n % 7}", n) for n in range(40)))
        producer = FakeProducer(partitions=3)
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        assert await relay.publish_pending() == 40

        # Java's default partitioner: murmur2 of the key, positive, modulo the partitions.
        expected = {f"c-{n}": (murmur2(f"c-{n}".encode()) & 0x7FFFFFFF) % 3 for n in range(7)}
        assert {m.key.decode(): m.partition for m in producer.sent if m.key} == expected
        assert producer.batches == len(set(expected.values()))
        for key in expected:
            assert sent_of(producer, key) == [e.id for e in written if e.subject == key]

    async def test_rows_past_a_full_batch_wait_for_the_next_round_in_order(
        self, event_sessions: SessionFactory, size_limit: None
    ) -> None:
        # Room for about three of these events in one record batch.
        outbox.configure(KafkaSettings(max_message_bytes=4096, seal_personal_fields=False))
        events = [large_page_view("c-1", 900), page_view("c-2", 0)]
        events += [large_page_view("c-1", 900) for _ in range(5)]
        written = await write(event_sessions, *events)
        producer = FakeProducer(partitions=1)
        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(max_message_bytes=4096),
        )

        first = await relay.publish_pending()
        assert 0 < first < len(written)
        assert (await relay.backlog())[0] == len(written) - first
        while await relay.publish_pending():
            pass

        assert sent_ids(producer) == [envelope.id for envelope in written]
        assert await rows(event_sessions) == []

    async def test_a_row_over_the_producers_limit_is_parked_without_a_send(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), large_page_view("c-1", 60_000))
        producer = FakeProducer()
        # The limit was lowered after the row was written: the producer's own check refuses it.
        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(max_message_bytes=1024),
        )

        assert await relay.publish_pending() == 1

        assert sent_ids(producer) == [written[0].id]
        (parked,) = await parked_rows(event_sessions)
        assert parked.event_id == written[1].id
        assert parked.park_reason is not None
        assert parked.park_reason.startswith("MessageSizeTooLargeError")
        assert str(1024 + PRODUCER_HEADROOM_BYTES) in parked.park_reason


class TestSentRows:
    """By default a row is deleted once the broker has it; a retention keeps it marked."""

    async def test_with_a_retention_sent_rows_are_kept_marked_then_purged(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-1", 2))
        relay = OutboxRelay(
            event_sessions,
            FakeProducer(),  # type: ignore[arg-type]
            settings(outbox_retention_s=3600),
        )

        assert await relay.publish_pending() == 2

        kept = await rows(event_sessions)
        assert [row.event_id for row in kept] == [envelope.id for envelope in written]
        assert all(row.sent_at is not None for row in kept)
        assert await relay.backlog() == (0, 0.0)
        relay._last_purge -= timedelta(minutes=2)
        await relay._purge_old()  # not yet past the retention
        assert len(await rows(event_sessions)) == 2

        async with transaction(event_sessions) as session:
            await session.exec(update(OutboxMessage).values(sent_at=utcnow() - timedelta(hours=2)))
        relay._last_purge -= timedelta(minutes=2)
        await relay._purge_old()
        assert await rows(event_sessions) == []

    async def test_rows_marked_sent_before_deleting_on_send_are_purged(
        self, event_sessions: SessionFactory
    ) -> None:
        await write(event_sessions, page_view("c-1", 1))
        async with transaction(event_sessions) as session:
            await session.exec(update(OutboxMessage).values(sent_at=utcnow()))
        relay = OutboxRelay(event_sessions, FakeProducer(), settings())  # type: ignore[arg-type]

        relay._last_purge -= timedelta(minutes=2)
        await relay._purge_old()

        assert await rows(event_sessions) == []

    async def test_postgresql_reads_a_batch_from_the_index_without_sorting_the_backlog(
        self, event_engine: AsyncEngine, event_sessions: SessionFactory
    ) -> None:
        if event_engine.dialect.name != "postgresql":
            pytest.skip("the plan of PostgreSQL's planner")
        await write(event_sessions, *(page_view(f"c-{n}", n) for n in range(50)))
        query = (
            sqlalchemy.select(OutboxMessage.id)
            .where(outbox.is_pending())
            .order_by(*_PENDING_ORDER)
            .limit(10)
        )
        async with event_engine.connect() as connection:
            compiled = query.compile(event_engine, compile_kwargs={"literal_binds": True})
            plan = (await connection.exec_driver_sql(f"EXPLAIN {compiled}")).scalars().all()

        assert any("ix_outbox_pending" in line for line in plan), plan
        assert not any("Sort" in line for line in plan), plan


class TestBrokerDown:
    """Broker down means events wait, not vanish."""

    async def test_a_failed_send_leaves_rows_pending_and_the_next_call_sends_them(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(3)))
        producer = FakeProducer(fail_next=1)
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        with pytest.raises(ConnectionError):
            await relay.publish_pending()

        assert producer.sent == []
        assert all(row.sent_at is None for row in await rows(event_sessions))
        assert (await relay.backlog())[0] == 3

        assert await relay.publish_pending() == 3
        assert sent_ids(producer) == [envelope.id for envelope in written]
        assert await rows(event_sessions) == []

    async def test_a_batch_refused_midway_goes_again_whole_rather_than_lost(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(4)))
        ids = [envelope.id for envelope in written]
        producer = FailsOnce(at_send=3)
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        with pytest.raises(ConnectionError):
            await relay.publish_pending()
        assert sent_ids(producer) == []  # the record batch went nowhere

        assert await relay.publish_pending() == 4
        assert sent_ids(producer) == ids
        assert (await relay.backlog())[0] == 0

    async def test_a_failed_delivery_puts_its_batch_before_what_was_read_ahead(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(6)))
        ids = [envelope.id for envelope in written]
        producer = DeliveryFailsOnce(at_send=3)
        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(relay_batch_size=2),
        )

        assert await relay.publish_pending() == 2
        with pytest.raises(ConnectionError):
            await relay.publish_pending()  # rows 5 and 6 were being read meanwhile

        assert [await relay.publish_pending() for _ in range(3)] == [2, 2, 0]
        assert sent_ids(producer) == ids[:4] + ids[2:]
        assert (await relay.backlog())[0] == 0

    async def test_a_delivery_that_never_completes_times_out(
        self, event_sessions: SessionFactory
    ) -> None:
        await write(event_sessions, page_view("c-1", 1))
        relay = OutboxRelay(
            event_sessions,
            NeverAcknowledges(),  # type: ignore[arg-type]
            settings(send_timeout_s=0.1),
        )

        with pytest.raises(TimeoutError):
            await relay.publish_pending()

        assert (await relay.backlog())[0] == 1

    async def test_the_running_relay_retries_until_the_broker_is_back(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-2", 1))
        producer = FakeProducer(fail_next=3)
        published = asyncio.Event()

        async def after_publish(batch: list[PendingMessage]) -> None:
            published.set()

        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(relay_max_backoff_s=0.05, relay_poll_interval_s=0.01),
            after_publish=after_publish,
        )
        relay.start()
        try:
            await asyncio.wait_for(published.wait(), 10)
        finally:
            await relay.stop()

        assert relay.failures == 3
        assert sent_ids(producer) == [envelope.id for envelope in written]


class FailsOnce(FakeProducer):
    """Fails the n-th send (1-based) once: a broker that drops out mid-batch."""

    def __init__(self, at_send: int) -> None:
        super().__init__()
        self._at_send = at_send
        self._calls = 0

    async def send(self, *args: Any, **kwargs: Any) -> "asyncio.Future[None]":
        self._calls += 1
        if self._calls == self._at_send:
            return await self._fail(*args, **kwargs)
        return await super().send(*args, **kwargs)

    async def _fail(self, *_args: Any, **_kwargs: Any) -> "asyncio.Future[None]":
        raise ConnectionError("broker dropped out")


class DeliveryFailsOnce(FailsOnce):
    """Accepts every send but fails the n-th one's delivery once: a lost acknowledgement."""

    async def _fail(self, *args: Any, **kwargs: Any) -> "asyncio.Future[None]":
        await FakeProducer.send(self, *args, **kwargs)
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("acknowledgement lost"))
        return failed


class NeverAcknowledges(FakeProducer):
    """Accepts sends but never confirms delivery: a stalled broker."""

    async def send(self, *args: Any, **kwargs: Any) -> "asyncio.Future[None]":
        return asyncio.get_running_loop().create_future()


class TestTraceContext:
    """The trace of the request that wrote an event continues through the relay."""

    async def test_the_active_span_is_stored_with_the_row(
        self, event_sessions: SessionFactory, span_exporter: InMemorySpanExporter
    ) -> None:
        with trace.get_tracer("tests").start_as_current_span("POST /customers") as request:
            envelope = (await write(event_sessions, page_view("c-1", 1)))[0]
        context = request.get_span_context()

        (row,) = await rows(event_sessions)
        stored = dict(row.headers)["traceparent"]
        assert ids_of(stored) == (context.trace_id, context.span_id)
        assert envelope.traceparent == stored

    async def test_no_active_span_stores_no_trace_headers(
        self, event_sessions: SessionFactory, span_exporter: InMemorySpanExporter
    ) -> None:
        await write(event_sessions, page_view("c-1", 1))

        (row,) = await rows(event_sessions)
        assert "traceparent" not in dict(row.headers)

    async def test_the_send_span_is_a_child_of_the_request_and_travels_on(
        self, event_sessions: SessionFactory, span_exporter: InMemorySpanExporter
    ) -> None:
        with trace.get_tracer("tests").start_as_current_span("POST /v1/track") as request:
            await write(event_sessions, page_view("c-1", 1))
        context = request.get_span_context()
        producer = FakeProducer()

        # Published later, outside the request: the context comes from the row.
        await OutboxRelay(event_sessions, producer, settings()).publish_pending()  # type: ignore[arg-type]

        (send,) = [
            span
            for span in span_exporter.get_finished_spans()
            if span.context.trace_id == context.trace_id and span.name.startswith("send ")
        ]
        assert send.parent is not None and send.parent.span_id == context.span_id
        assert send.kind == trace.SpanKind.PRODUCER
        assert send.attributes is not None
        assert send.attributes["messaging.destination.name"] == CUSTOMER_EVENTS_TOPIC
        sent = producer.envelopes()[0]
        assert sent.traceparent is not None
        assert ids_of(sent.traceparent) == (context.trace_id, send.context.span_id)


@pytest.fixture
def size_limit() -> Iterator[None]:
    """Puts back the process-wide event size limit a test changes."""
    before = outbox.max_message_bytes()
    yield
    outbox.configure(KafkaSettings(max_message_bytes=before, seal_personal_fields=False))


def large_page_view(customer_id: str, size: int) -> InteractionTracked:
    return InteractionTracked(customer_id=customer_id, kind="page", url="x" * size)


class TestEventSizeLimit:
    """An event the broker would refuse is refused when it is written, so it cannot block."""

    async def test_add_refuses_an_event_over_the_limit_and_nothing_is_stored(
        self, event_sessions: SessionFactory
    ) -> None:
        with pytest.raises(EventTooLarge) as refused:
            async with transaction(event_sessions) as session:
                outbox.add(session, page_view("c-1", 1), source=SOURCE)
                outbox.add(session, large_page_view("c-1", 1_100_000), source=SOURCE)

        assert refused.value.event_type == InteractionTracked.TYPE
        assert refused.value.size > 1_100_000
        assert refused.value.limit == outbox.max_message_bytes() == 1_000_000
        assert InteractionTracked.TYPE in str(refused.value)
        assert str(refused.value.size) in str(refused.value)
        assert await rows(event_sessions) == []

    async def test_add_all_refuses_every_event_when_one_is_over(
        self, event_sessions: SessionFactory
    ) -> None:
        events = [page_view("c-1", 1), large_page_view("c-2", 1_100_000), page_view("c-3", 3)]

        with pytest.raises(EventTooLarge):
            async with transaction(event_sessions) as session:
                await outbox.add_all(session, events, source=SOURCE)

        assert await rows(event_sessions) == []

    async def test_the_limit_is_the_size_of_the_message_on_the_log(
        self, event_sessions: SessionFactory, size_limit: None
    ) -> None:
        outbox.configure(KafkaSettings(max_message_bytes=4096, seal_personal_fields=False))
        empty = outbox.message_size(encode(Envelope(large_page_view("c-1", 0), SOURCE)))
        at_limit = large_page_view("c-1", 4096 - empty)
        async with transaction(event_sessions) as session:
            envelope = outbox.add(session, at_limit, source=SOURCE)

        assert outbox.message_size(encode(envelope)) == 4096
        with pytest.raises(EventTooLarge):
            async with transaction(event_sessions) as session:
                outbox.add(session, large_page_view("c-1", 4096 - empty + 1), source=SOURCE)
        assert len(await rows(event_sessions)) == 1

    async def test_the_runtime_sets_the_limit_and_the_producer_allows_more(
        self, size_limit: None
    ) -> None:
        settings = KafkaSettings(max_message_bytes=2_000_000)
        engine = create_engine("sqlite:///:memory:")
        EventRuntime(service="profile", engine=engine, settings=settings)
        await engine.dispose()

        assert outbox.max_message_bytes() == 2_000_000
        producer = create_producer(settings, client_id="test")
        # Room for the trace headers the relay adds to a row that was written without.
        assert producer._max_request_size >= 2_000_000 + 1024
        default = create_producer(KafkaSettings(), client_id="test")
        assert default._max_request_size == 1_048_576  # aiokafka's and Kafka's default


class Refuses(FakeProducer):
    """Refuses the rows whose page name is in `refused`, at send or at delivery."""

    def __init__(self, refused: dict[str, Exception], *, at: str = "send") -> None:
        super().__init__()
        self.refused = refused
        self.at = at

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        **kwargs: Any,
    ) -> "asyncio.Future[None]":
        name = decode(value, headers or []).data.name  # type: ignore[attr-defined]
        error = self.refused.get(name)
        if error is None:
            return await super().send(topic, value, key, headers, **kwargs)
        if self.at == "send":
            raise error
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(error)
        return failed


async def parked_rows(sessions: SessionFactory) -> list[OutboxMessage]:
    async with transaction(sessions) as session:
        return await outbox.parked(session)


class TestParking:
    """A row the broker refuses for good is parked, and the relay moves on."""

    @pytest.mark.parametrize("at", ["send", "delivery"])
    async def test_a_refused_row_is_parked_and_the_rows_after_it_go_out(
        self, event_sessions: SessionFactory, at: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        written = await write(
            event_sessions,
            page_view("c-1", 1),
            page_view("c-1", 2),
            page_view("c-1", 3),
            page_view("c-2", 4),
        )
        producer = Refuses({"page 2": MessageSizeTooLargeError()}, at=at)
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        with caplog.at_level(logging.ERROR, logger="rapport_events.relay"):
            assert await relay.publish_pending() == 3

        # The parked customer's later events go on: its order is already broken.
        assert sent_of(producer, "c-1") == [written[0].id, written[2].id]
        assert sorted(sent_ids(producer)) == sorted(written[n].id for n in (0, 2, 3))
        (parked,) = await parked_rows(event_sessions)
        assert (parked.event_id, parked.sent_at) == (written[1].id, None)
        assert parked.parked_at is not None
        assert parked.park_reason is not None
        assert parked.park_reason.startswith("MessageSizeTooLargeError")
        assert (relay.published, relay.parked) == (3, 1)
        assert await relay.backlog() == (0, 0.0)
        (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert written[1].id in record.getMessage()
        assert InteractionTracked.TYPE in record.getMessage()
        assert "MessageSizeTooLargeError" in record.getMessage()

        assert await relay.publish_pending() == 0
        assert len(producer.sent) == 3

    async def test_parking_in_full_batches_keeps_the_rest_in_order(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(6)))
        refusals = {"page 1": RecordTooLargeError(), "page 2": InvalidTopicError()}
        producer = Refuses(refusals, at="delivery")
        relay = OutboxRelay(
            event_sessions,
            producer,  # type: ignore[arg-type]
            settings(relay_batch_size=2),
        )

        assert [await relay.publish_pending() for _ in range(4)] == [1, 1, 2, 0]

        assert sent_ids(producer) == [written[n].id for n in (0, 3, 4, 5)]
        assert [row.event_id for row in await parked_rows(event_sessions)] == [
            written[1].id,
            written[2].id,
        ]
        assert [row for row in await rows(event_sessions) if not row.parked_at] == []
        assert relay.parked == 2

    @pytest.mark.parametrize(
        ("error", "at"),
        [
            (KafkaConnectionError(), "delivery"),
            (NotEnoughReplicasError(), "delivery"),
            (KafkaTimeoutError(), "send"),  # not `retriable`, but a broker slow or away
        ],
        ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value,
    )
    async def test_a_transient_failure_is_retried_not_parked(
        self, event_sessions: SessionFactory, error: Exception, at: str
    ) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-1", 2))
        producer = Refuses({"page 2": error}, at=at)
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        with pytest.raises(type(error)):
            await relay.publish_pending()

        assert await parked_rows(event_sessions) == []
        assert (await relay.backlog())[0] == 2
        producer.refused.clear()
        assert await relay.publish_pending() == 2
        assert sent_ids(producer)[-2:] == [envelope.id for envelope in written]

    async def test_a_batch_with_both_parks_the_refused_row_and_retries_the_rest(
        self, event_sessions: SessionFactory
    ) -> None:
        written = await write(event_sessions, *(page_view("c-1", seq) for seq in range(3)))
        refusals = {"page 0": MessageSizeTooLargeError(), "page 2": KafkaConnectionError()}
        producer = Refuses(refusals, at="delivery")
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        with pytest.raises(KafkaConnectionError):
            await relay.publish_pending()
        assert [row.event_id for row in await parked_rows(event_sessions)] == [written[0].id]

        del producer.refused["page 2"]
        assert await relay.publish_pending() == 2
        assert sent_ids(producer)[-2:] == [written[1].id, written[2].id]
        assert (await relay.backlog())[0] == 0

    async def test_unparked_rows_are_published_again(self, event_sessions: SessionFactory) -> None:
        written = await write(event_sessions, page_view("c-1", 1), page_view("c-1", 2))
        producer = Refuses({"page 1": MessageSizeTooLargeError()})
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]
        assert await relay.publish_pending() == 1
        (parked,) = await parked_rows(event_sessions)
        assert parked.id is not None

        producer.refused.clear()  # the broker's limit was raised
        async with transaction(event_sessions) as session:
            assert await outbox.unpark(session, [parked.id]) == 1
        async with transaction(event_sessions) as session:
            assert await outbox.unpark(session, [parked.id]) == 0  # no longer parked

        assert await relay.publish_pending() == 1
        assert sent_ids(producer) == [written[1].id, written[0].id]
        assert await parked_rows(event_sessions) == []
        assert await rows(event_sessions) == []

    async def test_parked_rows_are_counted_and_left_out_of_the_backlog(
        self, event_engine: AsyncEngine
    ) -> None:
        runtime = EventRuntime(service="profile", engine=event_engine, settings=settings())
        await write(runtime.sessions, page_view("c-1", 1), page_view("c-1", 2))
        producer = Refuses({"page 1": MessageSizeTooLargeError()})
        relay = OutboxRelay(runtime.sessions, producer, settings())  # type: ignore[arg-type]
        assert await relay.publish_pending() == 1

        await write(runtime.sessions, page_view("c-1", 3))

        assert (await outbox_backlog(runtime))[0] == (await relay.backlog())[0] == 1
        assert await outbox_parked(runtime) == relay.parked == 1

    @pytest.mark.parametrize(
        ("error", "permanent"),
        [
            (MessageSizeTooLargeError(), True),
            (RecordTooLargeError(), True),
            (InvalidTopicError(), True),
            (RequestTimedOutError(), False),
            (NotEnoughReplicasError(), False),
            (KafkaConnectionError(), False),
            (KafkaTimeoutError(), False),
            (TopicAuthorizationFailedError(), False),  # every row would fail alike
            (ConnectionError("broker away"), False),
            (ValueError("a bug"), False),
        ],
        ids=lambda value: type(value).__name__,
    )
    def test_only_errors_about_the_record_itself_are_permanent(
        self, error: Exception, permanent: bool
    ) -> None:
        assert is_permanent(error) is permanent
