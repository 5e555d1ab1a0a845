"""The outbox relay: publishes pending outbox rows in order, then deletes (or marks) them.

Each round reads a batch of pending rows with one statement, builds one Kafka record
batch per partition (the partition the producer's default partitioner gives the key,
so a customer's events stay on one partition), hands those batches to the producer
without awaiting each message, and removes the delivered rows with one statement.
On PostgreSQL only the relay holding the database's advisory lock publishes
(`rapport_events.relay_lock`); the others stand by.

One module although long: a round's steps (read ahead, batch per partition, submit,
fall back to one by one, park what the broker refuses for good, mark or delete) share the
relay's state — the rows in flight, the read-ahead, the lock — and are read in that
order; split, each part would take that state as arguments. The SQL helpers and the send
spans at the bottom serve only the round.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import bindparam, delete, func, update
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select

from rapport_events.aio import cancel_and_wait
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, read_transaction, transaction
from rapport_events.kafka import PRODUCER_HEADROOM_BYTES
from rapport_events.outbox import PARK_REASON_MAX_LENGTH, OutboxMessage, is_pending
from rapport_events.partitioning import KeyPartitioner
from rapport_events.relay_lock import AdvisoryLock
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import Heartbeat, Supervised
from rapport_events.tracing import tracer, tracing_enabled

log = logging.getLogger(__name__)

# What the broker (or the producer's own check) says about one record that no retry can
# change. Not every error without `retriable`: a timeout, a closed producer or a missing
# authorisation are not about the record, and parking would only empty the outbox.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)
# Room for the `traceparent`/`tracestate` headers a send span puts on a record (W3C caps
# tracestate at 512 characters), so a record measured before its span still fits.
TRACE_HEADERS_ROOM = 1024
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
# The relay reads and writes only the W3C headers, so it asks their propagator alone.
_W3C = TraceContextTextMapPropagator()
# What the propagator gives for a row written outside any trace: the send span is a root.
_NO_PARENT = otel_context.Context()
_partition_of_key = KeyPartitioner()


def is_permanent(error: BaseException) -> bool:
    """Whether the broker refused a record for good, so the row is parked instead of retried."""
    return isinstance(error, PERMANENT_ERRORS) and not getattr(error, "retriable", False)


class LockLost(Exception):
    """The relay lost its lock while publishing; what it was sending is left to the new holder."""


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox row as the relay publishes it."""

    id: int
    event_id: str
    event_type: str
    topic: str
    key: str
    value: bytes
    # The stored `[[name, value], ...]` as JSON text, decoded as the record is built: decoded
    # at read, its lists lived through the round and made the garbage collector's full
    # passes over the whole heap come several times as often.
    headers: str

    def header_pairs(self) -> list[list[str]]:
        """The stored headers, `[[name, value], ...]`."""
        return json.loads(self.headers)  # type: ignore[no-any-return]


@dataclass(slots=True)
class _PartitionBatch:
    """The rows of one round bound for one partition, as one record batch."""

    topic: str
    partition: int
    builder: BatchBuilder
    rows: list[PendingMessage] = field(default_factory=list)
    spans: list[otel_trace.Span] = field(default_factory=list)


@dataclass(slots=True)
class _Round:
    """What one publishing round did with its rows."""

    parked: set[int] = field(default_factory=set)
    # Rows left for the next round: their partition's batch was full, and the rows of a
    # partition go out in id order, so every later row of that partition waits too.
    deferred: set[int] = field(default_factory=set)


_PENDING_COLUMNS = (
    col(OutboxMessage.id),
    col(OutboxMessage.event_id),
    col(OutboxMessage.event_type),
    col(OutboxMessage.topic),
    col(OutboxMessage.key),
    col(OutboxMessage.value),
    # As text: the JSON is decoded row by row as each record is built (see PendingMessage).
    sqlalchemy.cast(col(OutboxMessage.headers), sqlalchemy.Text),
)
# Every pending row has both dates NULL, so this is id order, and it is the order of the
# index ix_outbox_pending: PostgreSQL walks the index and stops at the batch size. By id
# alone it does not see that, and sorts the whole backlog every round.
_PENDING_ORDER = (
    col(OutboxMessage.sent_at),
    col(OutboxMessage.parked_at),
    col(OutboxMessage.id),
)


class OutboxRelay:
    """Reads the outbox in id order, publishes with bounded waits, deletes what was sent.

    Delivery is at least once: a crash between publish and delete publishes the row
    again, and the consumers' inbox drops the copy. A row the broker refuses for good
    is parked, and the rows after it (of its key too) go on. With `lock` (PostgreSQL)
    the relay publishes only while it holds the database's relay lock.
    """

    # Rows parked since start, a counter like `published` and `failures`.
    parked = 0

    def __init__(
        self,
        session_factory: SessionFactory,
        producer: AIOKafkaProducer,
        settings: KafkaSettings,
        *,
        after_publish: Callable[[list[PendingMessage]], Awaitable[None]] | None = None,
        lock: AdvisoryLock | None = None,
    ) -> None:
        self._sessions = session_factory
        self._producer = producer
        self._settings = settings
        self._wake = asyncio.Event()
        self._after_publish = after_publish
        self._lock = lock
        self._supervised: Supervised | None = None
        self._heartbeat = Heartbeat()
        self.last_error: str | None = None
        self._read_ahead: asyncio.Task[list[PendingMessage]] | None = None
        self._marking: tuple[list[int], asyncio.Task[None]] | None = None
        self._last_purge = utcnow()
        self._deferred = False
        self.published = 0
        self.failures = 0
        self.purge_failures = 0
        self.takeovers = 0

    @property
    def role(self) -> str:
        """`active` when this relay publishes; `standby` while another holds the lock."""
        return "active" if self._lock is None or self._lock.held else "standby"

    @property
    def lock(self) -> AdvisoryLock | None:
        return self._lock

    def wake(self) -> None:
        """Publish now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Relay in the background, under supervision."""
        self._heartbeat.beat()
        self._supervised = Supervised(
            "outbox-relay",
            self._run,
            policy=self._settings.restart_policy(),
            stalled=self._stall_reason,
        ).start()

    @property
    def supervised(self) -> Supervised | None:
        """The supervised relay task, for /readyz and the restart metric."""
        return self._supervised

    def _stall_reason(self) -> str | None:
        age = self._heartbeat.age_s()
        if age > self._settings.stall_after_s:
            return f"no publishing round completed for {age:.0f}s; last error: {self.last_error}"
        return None

    async def stop(self) -> None:
        if self._supervised is not None:
            await self._supervised.stop()
            self._supervised = None
        await self._drop_read_ahead()
        with contextlib.suppress(Exception):  # unmarked rows are simply relayed again
            await self._finish_marking()
        if self._lock is not None:
            await self._lock.release()  # a standby takes over now, not at a timeout

    async def _run(self) -> None:
        # The relay's own polling queries would be a root span every poll interval;
        # its send spans (made by our tracer directly) are unaffected.
        with suppress_instrumentation():
            if self._lock is None:
                await self._loop()
                return
            # Both run under this supervised task: if either fails, both start again, and
            # the supervisor logs and shows the error itself, not the group around it.
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._loop())
                    group.create_task(self._check_lock())
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None

    async def _check_lock(self) -> None:
        """Keep the lock's session busy and known to be alive, while the relay holds it."""
        assert self._lock is not None
        while True:
            await asyncio.sleep(self._settings.relay_lock_check_s)
            await self._lock.check()

    async def _loop(self) -> None:
        backoff = 0.0
        while True:
            if self._lock is not None and not self._lock.held:
                await self._stand_by()
            try:
                published = await self._fenced_round()
                backoff = 0.0
                self._heartbeat.beat()
            except LockLost as lost:
                log.warning("outbox relay stops publishing: %s; standing by", lost)
                continue
            except Exception as error:  # the broker or database is away: wait and retry
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"[:500]
                backoff = min(max(backoff * 2, 0.1), self._settings.relay_max_backoff_s)
                log.warning("outbox relay failed (%s); retrying in %.1fs", error, backoff)
                await asyncio.sleep(backoff)
                continue
            if published < self._settings.relay_batch_size and not self._deferred:
                await self._idle()

    async def _stand_by(self) -> None:
        """Wait, trying the lock every `relay_lock_check_s`, until this relay holds it."""
        assert self._lock is not None
        await self._drop_read_ahead()
        with contextlib.suppress(Exception):  # rows delivered before the loss may stay pending
            await self._finish_marking()
        if self._lock.lost.is_set():
            # Lost, not yet taken: the standbys, trying every interval, come first; this
            # relay's process may be the one in trouble.
            await asyncio.sleep(3 * self._settings.relay_lock_check_s)
        while True:
            self._heartbeat.beat()  # standing by is this relay's work: it is not stalled
            try:
                if await self._lock.try_acquire():
                    break
            except Exception as error:  # the database is away: /readyz says so already
                self.last_error = f"{type(error).__name__}: {error}"[:500]
                log.debug("outbox relay could not try its lock: %s", error)
            await asyncio.sleep(self._settings.relay_lock_check_s)
        self.takeovers += 1
        log.info("outbox relay holds the lock of its database and publishes")

    async def _fenced_round(self) -> int:
        """One round; with a lock, a round that loses it is cancelled and raises LockLost."""
        if self._lock is None:
            return await self.publish_pending()
        lock = self._lock
        if not lock.held:
            raise LockLost(lock.lost_reason or "the lock is not held")
        publishing = asyncio.ensure_future(self.publish_pending())
        loss = asyncio.ensure_future(lock.lost.wait())
        try:
            await asyncio.wait({publishing, loss}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loss.cancel()  # first: a stop arriving below must not leave it waiting
            if not publishing.done():
                # Lost (or stopped): send nothing more. What was handed to the producer
                # may still go; it is the oldest pending rows, which the new holder sends
                # first again, so each key's first copies keep their order.
                await cancel_and_wait(publishing)
            await cancel_and_wait(loss)
        if publishing.cancelled():
            raise LockLost(lock.lost_reason or "the lock was lost")
        return publishing.result()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.relay_poll_interval_s):
                await self._wake.wait()
        self._wake.clear()
        try:
            await self._purge_old()
        except Exception as error:
            # A purge that fails (a locked SQLite, a cancelled DELETE) must not stop the
            # publishing: the rows are purged at a later pass.
            self.purge_failures += 1
            log.warning("outbox purge failed (%r); publishing goes on", error)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published.

        While a full batch waits for the broker the next one is read, and its rows are
        deleted (or marked sent) while the next batch goes out; a short batch at once.
        Rows the broker refuses for good are parked; rows that did not fit their
        partition's record batch wait for the next round.
        """
        rows = await self._next_rows()
        self._deferred = False
        if not rows:
            await self._finish_marking()
            return 0
        full = len(rows) == self._settings.relay_batch_size
        try:
            done = await self._publish(rows, read_ahead=full)
            if done.parked or done.deferred:
                left = done.parked | done.deferred
                rows = [row for row in rows if row.id not in left]
                self._deferred = bool(done.deferred)
            if self._after_publish is not None:
                await self._after_publish(rows)
            await self._finish_marking()
            ids = [row.id for row in rows]
            if full:
                self._marking = (ids, asyncio.create_task(self._mark_sent(ids)))
            elif ids:
                await self._mark_sent(ids)
        except BaseException:
            # What was read ahead skipped these rows; they come first again next time.
            await self._drop_read_ahead()
            raise
        self.published += len(rows)
        return len(rows)

    async def _next_rows(self) -> list[PendingMessage]:
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None:
            return await ahead
        await self._finish_marking()  # a fresh read would see those rows still pending
        return await self._pending()

    async def _drop_read_ahead(self) -> None:
        ahead, self._read_ahead = self._read_ahead, None
        with contextlib.suppress(Exception):  # a failed read has nothing worth keeping
            await cancel_and_wait(ahead)

    async def _finish_marking(self) -> None:
        """Wait for the previous batch's mark; if it failed, its rows go out again."""
        if self._marking is None:
            return
        _, marking = self._marking
        try:
            # Shielded: a stop that cancels the relay here still lets the mark finish.
            await asyncio.shield(marking)
        finally:
            if marking.done():
                self._marking = None

    async def _pending(self, in_flight: Sequence[int] = ()) -> list[PendingMessage]:
        # Plain columns, not ORM objects: building a model per row cost more than its send.
        query = sqlalchemy.select(*_PENDING_COLUMNS).where(is_pending())
        async with read_transaction(self._sessions) as session:
            connection = await session.connection()
            if in_flight:
                # Not `id > last`: a transaction that began earlier may commit a lower id later.
                query = query.where(~_among(connection.dialect.name, in_flight))
            result = await connection.execute(
                query.order_by(*_PENDING_ORDER).limit(self._settings.relay_batch_size)
            )
            return [PendingMessage(*row) for row in result.all()]

    async def _publish(self, rows: list[PendingMessage], *, read_ahead: bool = False) -> _Round:
        """Send `rows`, one record batch per partition, and wait for the broker.

        A transient failure of any batch raises (after parking the refused rows), and
        the round goes out again. A batch the broker refuses for good is sent again one
        record per batch, so only the records it refuses are parked.
        """
        # Every wait is bounded so a stalled broker cannot hang the relay. asyncio.timeout,
        # not wait_for: on 3.11 wait_for can swallow a cancellation, and a relay that
        # ignores cancel never stops.
        timeout = self._settings.send_timeout_s
        done = _Round()
        refused: list[tuple[PendingMessage, BaseException]] = []
        async with asyncio.timeout(timeout):
            partitions = await self._partitions([row.topic for row in rows])
        batches = self._batches(rows, partitions, done, refused)
        try:
            async with asyncio.timeout(timeout):
                deliveries = [await self._submit(batch) for batch in batches]
            if read_ahead:
                # Neither these rows nor the previous batch's, perhaps still being marked;
                # deferred rows are read again, first.
                in_flight = [row.id for row in rows if row.id not in done.deferred]
                in_flight += self._marking[0] if self._marking else []
                self._read_ahead = asyncio.create_task(self._pending(in_flight))
            async with asyncio.timeout(timeout):
                results = await asyncio.gather(*deliveries, return_exceptions=True)
        except BaseException as error:
            for batch in batches:
                _end_spans(batch.spans, error)
            raise
        transient: list[BaseException] = []
        for batch, result in zip(batches, results, strict=True):
            _end_spans(batch.spans, result if isinstance(result, BaseException) else None)
            if not isinstance(result, BaseException):
                continue
            if not is_permanent(result):
                transient.append(result)
            elif len(batch.rows) == 1:
                refused.append((batch.rows[0], result))
            else:
                alone = await self._publish_one_by_one(batch, partitions)
                refused += [(row, error) for row, error in alone if is_permanent(error)]
                transient += [error for _, error in alone if not is_permanent(error)]
        if refused:
            await self._park(refused)
            done.parked = {row.id for row, _ in refused}
        if transient:
            raise transient[0]
        return done

    async def _partitions(self, topics: list[str]) -> dict[str, list[int]]:
        """The partitions of each topic, sorted, as the default partitioner wants them."""
        return {topic: sorted(await self._producer.partitions_for(topic)) for topic in set(topics)}

    def _batches(
        self,
        rows: list[PendingMessage],
        partitions: dict[str, list[int]],
        done: _Round,
        refused: list[tuple[PendingMessage, BaseException]],
    ) -> list[_PartitionBatch]:
        """The rows of a round as one record batch per partition, in id order.

        A row bigger than the producer allows is refused here, as the producer's own
        check would; a row that does not fit its partition's batch waits, with every
        later row of that partition.
        """
        max_batch_bytes = self._settings.max_message_bytes
        max_record_bytes = self._settings.max_message_bytes + PRODUCER_HEADROOM_BYTES
        send_spans = _SendSpans() if tracing_enabled() else None
        by_partition: dict[tuple[str, int], _PartitionBatch] = {}
        full: set[tuple[str, int]] = set()
        for row in rows:
            key = row.key.encode()
            where = (row.topic, _partition_of_key(key, partitions[row.topic]))
            if where in full:
                done.deferred.add(row.id)
                continue
            pairs = row.header_pairs()
            headers = [(name, value.encode()) for name, value in pairs]
            # An empty stored value is a tombstone (a shredded data key): sent as null.
            value = row.value or None
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > max_record_bytes:
                refused.append((row, _too_large(size, max_record_bytes)))
                continue
            batch = by_partition.get(where)
            if batch is None:
                builder = BatchBuilder(max_batch_bytes, 0)  # 0: no compression, as the producer
                batch = by_partition[where] = _PartitionBatch(*where, builder)
            elif batch.builder.size() + size + TRACE_HEADERS_ROOM > max_batch_bytes:
                full.add(where)
                done.deferred.add(row.id)
                continue
            span = send_spans.start(row, pairs, where[1]) if send_spans is not None else None
            if span is not None:
                headers = _with_trace_headers(headers, span)
            if batch.builder.append(timestamp=None, key=key, value=value, headers=headers):
                batch.rows.append(row)
                if span is not None:
                    batch.spans.append(span)
            else:  # over the estimate after all: it goes first in its partition next round
                if span is not None:
                    span.end()
                full.add(where)
                done.deferred.add(row.id)
        return list(by_partition.values())

    async def _submit(self, batch: _PartitionBatch) -> "asyncio.Future[Any]":
        """Hand one record batch to the producer; its future is the broker's answer."""
        batch.builder.close()  # nothing the producer sends meanwhile may join it
        try:
            return await self._producer.send_batch(
                batch.builder, batch.topic, partition=batch.partition
            )
        except Exception as error:
            if not is_permanent(error):
                raise
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(error)
            return refused

    async def _publish_one_by_one(
        self, batch: _PartitionBatch, partitions: dict[str, list[int]]
    ) -> list[tuple[PendingMessage, BaseException]]:
        """Send the rows of a refused batch one record per batch; returns the ones that failed."""
        singles: list[_PartitionBatch] = []
        failed: list[tuple[PendingMessage, BaseException]] = []
        for row in batch.rows:
            singles += self._batches([row], partitions, _Round(), failed)
        timeout = self._settings.send_timeout_s
        try:
            async with asyncio.timeout(timeout):
                deliveries = [await self._submit(single) for single in singles]
            async with asyncio.timeout(timeout):
                results = await asyncio.gather(*deliveries, return_exceptions=True)
        except BaseException as error:
            for single in singles:
                _end_spans(single.spans, error)
            raise
        for single, result in zip(singles, results, strict=True):
            outcome = result if isinstance(result, BaseException) else None
            _end_spans(single.spans, outcome)
            if outcome is not None:
                failed.append((single.rows[0], outcome))
        return failed

    async def _park(self, refused: list[tuple[PendingMessage, BaseException]]) -> None:
        """Take rows the broker refused for good out of the pending ones, in one statement."""
        now = utcnow()
        reasons = [
            {
                "row_id": row.id,
                "reason": f"{type(error).__name__}: {error}"[:PARK_REASON_MAX_LENGTH],
            }
            for row, error in refused
        ]
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            await connection.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == bindparam("row_id"))
                .values(parked_at=now, park_reason=bindparam("reason")),
                reasons,
            )
        self.parked += len(refused)
        for (row, _error), reason in zip(refused, reasons, strict=True):
            log.error(
                "outbox row %s parked: the broker refuses %s event %s for good (%s)",
                row.id,
                row.event_type,
                row.event_id,
                reason["reason"],
                extra={
                    "outbox_id": row.id,
                    "event_id": row.event_id,
                    "event_type": row.event_type,
                    "park_reason": reason["reason"],
                },
            )

    async def _mark_sent(self, ids: list[int]) -> None:
        """Delete the published rows, or mark them sent when sent rows are kept a while."""
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            rows = _among(connection.dialect.name, ids)
            if self._settings.outbox_retention_s > 0:
                await connection.execute(update(OutboxMessage).where(rows).values(sent_at=utcnow()))
            else:
                await connection.execute(delete(OutboxMessage).where(rows))

    async def _purge_old(self) -> None:
        """Delete rows marked sent longer ago than the retention, at most once a minute."""
        now = utcnow()
        if (now - self._last_purge).total_seconds() < 60:
            return
        self._last_purge = now
        cutoff = now - timedelta(seconds=self._settings.outbox_retention_s)
        async with transaction(self._sessions) as session:
            await session.exec(
                delete(OutboxMessage).where(
                    col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.sent_at) < cutoff
                )
            )

    async def backlog(self) -> tuple[int, float]:
        """Pending rows and the age in seconds of the oldest one; parked rows are not pending."""
        async with transaction(self._sessions) as session:
            result = await session.exec(
                select(func.count(), func.min(OutboxMessage.created_at)).where(is_pending())
            )
            count, oldest = result.one()
        if not oldest:
            return 0, 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        return int(count), (utcnow() - oldest).total_seconds()


def _among(dialect: str, ids: Sequence[int]) -> sqlalchemy.ColumnElement[bool]:
    """`outbox.id` among `ids`, bound as one value: an array (PostgreSQL) or JSON text (SQLite).

    Rendering and binding 500 or 1,000 ids one parameter each cost more than the statement
    took to run.
    """
    row_id = col(OutboxMessage.id)
    if dialect == "postgresql":
        bigints = postgresql.ARRAY(sqlalchemy.BigInteger)
        return row_id == sqlalchemy.any_(sqlalchemy.bindparam("ids", list(ids), type_=bigints))
    if dialect == "sqlite":
        listed = sqlalchemy.bindparam("ids", json.dumps(list(ids)), type_=sqlalchemy.Text)
        return row_id.in_(sqlalchemy.select(_json_each(listed).c.value))
    return row_id.in_(ids)


def _json_each(listed: sqlalchemy.BindParameter[str]) -> sqlalchemy.TableValuedAlias:
    """SQLite's `json_each(:ids)`, whose `value` column holds the ids."""
    return sqlalchemy.func.json_each(listed).table_valued("value")


def _too_large(size: int, limit: int) -> MessageSizeTooLargeError:
    return MessageSizeTooLargeError(
        f"The message is {size} bytes when serialized which is larger than the maximum"
        f" request size of {limit} bytes"
    )


class _SendSpans:
    """Starts the PRODUCER span of each message of a round, a child of the request that wrote it.

    Spans are started without becoming the current span, and ended when the broker
    answers. The rows of one request share its trace context, so it is parsed once a round.
    """

    def __init__(self) -> None:
        self._tracer = tracer()
        self._parents: dict[tuple[str | None, str | None], otel_context.Context] = {}

    def start(self, row: PendingMessage, pairs: list[list[str]], partition: int) -> otel_trace.Span:
        """The send span of `row`, bound for `partition`; `pairs` are its stored headers."""
        return self._tracer.start_span(
            f"send {row.topic}",
            context=self._parent(pairs),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": row.topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.message.id": row.event_id,
                "messaging.kafka.message.key": row.key,
                "cloudevents.event_type": row.event_type,
            },
        )

    def _parent(self, pairs: list[list[str]]) -> otel_context.Context:
        stored = {name: value for name, value in pairs if name in _TRACE_HEADERS}
        if not stored:
            return _NO_PARENT
        trace_headers = (stored.get("traceparent"), stored.get("tracestate"))
        parent = self._parents.get(trace_headers)
        if parent is None:
            parent = self._parents[trace_headers] = _W3C.extract(stored)
        return parent


def _with_trace_headers(
    headers: list[tuple[str, bytes]], span: otel_trace.Span
) -> list[tuple[str, bytes]]:
    """The row's headers with the send span's W3C trace context: consumers continue it."""
    context = span.get_span_context()
    kept = [(name, value) for name, value in headers if name not in _TRACE_HEADERS]
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    kept.append(("traceparent", traceparent.encode()))
    if context.trace_state:
        kept.append(("tracestate", context.trace_state.to_header().encode()))
    return kept


def _end_spans(spans: list[otel_trace.Span], error: BaseException | None) -> None:
    for span in spans:
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()
    spans.clear()
