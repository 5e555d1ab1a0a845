"""The event library against the real broker and real databases (SQLite and PostgreSQL).

Each test writes to an upstream outbox and watches the downstream projection,
the group's committed offsets, or the raw log read by a plain aiokafka consumer.
"""

import asyncio
import json
import time
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.codec import Envelope, decode
from rapport_events.db import transaction
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import (
    HANDLERS,
    UPSTREAM,
    Harness,
    record_effect,
    tracked,
    until,
)
from rapport_events.types import InteractionTracked

pytestmark = pytest.mark.timeout(90)


def interleaved(customers: list[str], per_customer: int) -> list[InteractionTracked]:
    """seq 0 of every customer, then seq 1 of every customer, ..."""
    return [tracked(customer, seq) for seq in range(per_customer) for customer in customers]


def value_of(record: ConsumerRecord[bytes, bytes]) -> Any:
    """The record's JSON data with its sealed fields opened."""
    return json.loads(decode(record.value, record.headers).data.model_dump_json())


def next_offsets(records: list[ConsumerRecord[bytes, bytes]]) -> dict[int, int]:
    """Per partition, the offset after the last record: what a caught-up group commits."""
    offsets: dict[int, int] = {}
    for record in records:
        offsets[record.partition] = max(offsets.get(record.partition, 0), record.offset + 1)
    return offsets


class TestPublishedLog:
    async def test_outbox_events_arrive_in_order_per_key_as_plain_cloudevents(
        self, harness: Harness
    ) -> None:
        customers = [f"cust-{n}-{uuid.uuid4().hex[:6]}" for n in range(4)]
        upstream = await harness.runtime(harness.upstream, UPSTREAM, handlers=None)
        written: list[Envelope] = []
        for event in interleaved(customers, 5):  # one transaction per event, like requests
            written += await harness.write([event])

        records = await harness.read_topic(harness.topic, len(written))

        assert len(records) == len(written) == 20
        by_id = {envelope.id: envelope for envelope in written}
        seqs_by_key: dict[str, list[int]] = defaultdict(list)
        for record in records:
            headers = {name: value.decode() for name, value in record.headers}
            envelope = by_id[headers["ce_id"]]
            assert headers["ce_specversion"] == "1.0"
            assert uuid.UUID(headers["ce_id"])
            assert headers["ce_type"] == "rapport.interaction.tracked.v1"
            assert headers["ce_source"] == upstream.source == "/services/upstream"
            assert datetime.fromisoformat(headers["ce_time"]) == envelope.time
            assert headers["ce_subject"] == record.key.decode() == envelope.subject
            assert headers["content-type"] == "application/json"
            value = json.loads(record.value)
            assert "type" not in value
            # The personal fields are sealed; Rapport's decoder opens them.
            assert "properties" not in value and value["sealed"]
            assert headers["ce_datakey"].startswith(envelope.subject + "/")
            assert decode(record.value, record.headers).data == envelope.data
            seqs_by_key[record.key.decode()].append(value_of(record)["properties"]["seq"])
        assert seqs_by_key == {customer: [0, 1, 2, 3, 4] for customer in customers}
        assert await harness.backlog() == 0


class TestParkedRows:
    async def test_a_row_the_producer_refuses_is_parked_and_the_rows_after_it_arrive(
        self, harness: Harness
    ) -> None:
        customer = f"cust-{uuid.uuid4().hex[:6]}"
        limit = outbox.max_message_bytes()
        # A 2 MB row, as one written before the outbox had a limit.
        outbox.configure(KafkaSettings(max_message_bytes=4_000_000))
        try:
            big = InteractionTracked(customer_id=customer, kind="page", url="x" * 2_000_000)
            (oversized,) = await harness.write([big])
        finally:
            outbox.configure(KafkaSettings(max_message_bytes=limit))
        after = await harness.write([tracked(customer, 1), tracked(f"{customer}-b", 0)])
        relay = await harness.relay()

        records = await harness.read_topic(harness.topic, len(after))

        ids = [dict(record.headers)["ce_id"].decode() for record in records]
        assert sorted(ids) == sorted(envelope.id for envelope in after)
        assert relay.parked == 1
        async with transaction(harness.upstream.sessions) as session:
            (parked,) = await outbox.parked(session)
        assert parked.event_id == oversized.id
        assert (parked.park_reason or "").startswith("MessageSizeTooLargeError")
        await until(harness.backlog_is_empty, timeout=10, what="the backlog empty")


class TestAppliedDownstream:
    async def test_every_event_is_applied_once_in_key_order_and_the_next_offset_committed(
        self, harness: Harness
    ) -> None:
        customers = [f"cust-{n}-{uuid.uuid4().hex[:6]}" for n in range(4)]
        await harness.runtime(harness.upstream, UPSTREAM, handlers=None)
        downstream = await harness.runtime(harness.downstream, harness.group, handlers=HANDLERS)
        written = await harness.write(interleaved(customers, 5))

        await until(lambda: harness.has_effects(len(written)), timeout=30, what="20 effects")
        records = await harness.read_topic(harness.topic, len(written))
        expected = next_offsets(records)
        await until(lambda: committed_matches(harness, expected), timeout=10, what="offset commit")

        effects = await harness.effects()
        assert sorted(row.event_id for row in effects) == sorted(e.id for e in written)
        for customer in customers:
            assert [row.seq for row in effects if row.customer_id == customer] == [0, 1, 2, 3, 4]
        assert sorted(await harness.inbox_ids()) == sorted(e.id for e in written)
        assert downstream.consumer is not None
        assert (downstream.consumer.applied, downstream.consumer.duplicates) == (20, 0)


async def committed_matches(harness: Harness, expected: dict[int, int]) -> bool:
    committed = await harness.committed()
    return all(committed.get(partition) == offset for partition, offset in expected.items())


class TestOffsetCommitFollowsTheTransaction:
    async def test_no_offset_is_committed_while_the_handler_transaction_is_open(
        self, harness: Harness
    ) -> None:
        customer = f"cust-{uuid.uuid4().hex[:6]}"
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_on_seq_1(
            event: InteractionTracked, envelope: Envelope, session: AsyncSession
        ) -> None:
            await record_effect(event, envelope, session)
            if event.properties["seq"] == 1:
                entered.set()
                await release.wait()

        await harness.relay()
        written = await harness.write([tracked(customer, seq) for seq in range(3)])
        records = await harness.read_topic(harness.topic, 3)
        offset_of = {dict(r.headers)["ce_id"].decode(): r.offset for r in records}
        partition = records[0].partition
        # Started once all three are on the log, the consumer fetches them together and
        # applies them in one transaction unless its time budget runs out first. Either
        # way seq 1 holds a transaction open and seq 0 may or may not have committed.
        await harness.runner(handlers={InteractionTracked: [slow_on_seq_1]})

        await asyncio.wait_for(entered.wait(), 30)
        await asyncio.sleep(0.5)  # time enough for a premature commit to show
        applied = [row.seq for row in await harness.effects()]
        assert applied in ([], [0])
        held = (await harness.committed())[partition]
        first_open = written[len(applied)].id
        assert held is None or held <= offset_of[first_open]

        release.set()
        await until(
            lambda: committed_matches(harness, {partition: offset_of[written[2].id] + 1}),
            timeout=10,
            what="offset commit after the transaction",
        )
        assert [row.seq for row in await harness.effects()] == [0, 1, 2]


class TestTracePropagation:
    async def test_consumer_span_continues_the_relay_send_span_of_the_writing_trace(
        self, harness: Harness, span_exporter: InMemorySpanExporter
    ) -> None:
        await harness.runtime(harness.upstream, UPSTREAM, handlers=None)
        await harness.runtime(harness.downstream, harness.group, handlers=HANDLERS)
        with trace.get_tracer("tests").start_as_current_span("POST /customers") as request:
            await harness.write([tracked(f"cust-{uuid.uuid4().hex[:6]}", 0)])
        trace_id = request.get_span_context().trace_id

        def spans_of_trace() -> list[ReadableSpan]:
            return [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]

        def named(name: str) -> list[ReadableSpan]:
            return [s for s in spans_of_trace() if s.name == name]

        await until(lambda: named(f"process {harness.topic}"), timeout=30, what="the process span")
        [send] = named(f"send {harness.topic}")
        [process] = named(f"process {harness.topic}")
        assert send.kind is SpanKind.PRODUCER
        assert process.kind is SpanKind.CONSUMER
        assert send.parent is not None and process.parent is not None
        assert send.parent.span_id == request.get_span_context().span_id
        assert process.parent.span_id == send.context.span_id
        assert process.attributes is not None
        assert process.attributes["messaging.system"] == "kafka"
        assert process.attributes["messaging.destination.name"] == harness.topic
        assert process.attributes["messaging.consumer.group.name"] == harness.group
        assert process.attributes["messaging.operation.type"] == "process"


class TestCleanShutdown:
    async def test_stop_is_prompt_and_the_next_runner_resumes_from_the_committed_offset(
        self, harness: Harness
    ) -> None:
        customers = [f"cust-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
        await harness.relay()
        first = await harness.runner()
        before = await harness.write(interleaved(customers, 2))
        await until(lambda: first.applied == len(before), timeout=30, what="first batch")

        started = time.monotonic()
        await first.stop()
        stop_seconds = time.monotonic() - started
        print(f"runner stopped in {stop_seconds:.3f}s")
        assert stop_seconds < 3.0
        assert not first.running
        records = await harness.read_topic(harness.topic, len(before))
        assert await harness.committed() == {
            p: next_offsets(records).get(p) for p in range(harness.settings.partitions)
        }

        after = await harness.write(interleaved(customers, 2))
        second = await harness.runner()
        await until(lambda: second.applied == len(after), timeout=30, what="second batch")
        await asyncio.sleep(0.5)  # a redelivery of the first batch would show as duplicates

        assert (first.applied, first.duplicates) == (6, 0)
        assert (second.applied, second.duplicates) == (6, 0)
        effects = await harness.effects()
        assert sorted(row.event_id for row in effects) == sorted(e.id for e in before + after)
