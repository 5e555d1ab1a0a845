"""The outbox relay: publishes pending outbox rows in order and marks them sent."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind
from sqlalchemy import bindparam, delete, func, update
from sqlmodel import col, select

from rapport_events.aio import cancel_and_wait
from rapport_events.base import utcnow
from rapport_events.codec import header_map
from rapport_events.db import SessionFactory, read_transaction, transaction
from rapport_events.outbox import PARK_REASON_MAX_LENGTH, OutboxMessage, is_pending
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import Heartbeat, Supervised
from rapport_events.tracing import (
    context_from_headers,
    current_trace_headers,
    tracer,
    tracing_enabled,
)

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


def is_permanent(error: BaseException) -> bool:
    """Whether the broker refused a record for good, so the row is parked instead of retried."""
    return isinstance(error, PERMANENT_ERRORS) and not getattr(error, "retriable", False)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox row as the relay publishes it."""

    id: int
    event_id: str
    event_type: str
    topic: str
    key: str
    value: bytes
    headers: list[list[str]]


_PENDING_COLUMNS = (
    col(OutboxMessage.id),
    col(OutboxMessage.event_id),
    col(OutboxMessage.event_type),
    col(OutboxMessage.topic),
    col(OutboxMessage.key),
    col(OutboxMessage.value),
    col(OutboxMessage.headers),
)


class OutboxRelay:
    """Reads the outbox in id order, publishes with bounded waits, marks rows sent.

    Delivery is at least once: a crash between publish and mark-sent publishes
    the row again, and the consumers' inbox drops the copy. A row the broker refuses
    for good is parked, and the rows after it (of its key too) go on.
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
    ) -> None:
        self._sessions = session_factory
        self._producer = producer
        self._settings = settings
        self._wake = asyncio.Event()
        self._after_publish = after_publish
        self._supervised: Supervised | None = None
        self._heartbeat = Heartbeat()
        self.last_error: str | None = None
        self._read_ahead: asyncio.Task[list[PendingMessage]] | None = None
        self._marking: tuple[list[int], asyncio.Task[None]] | None = None
        self._last_purge = utcnow()
        self.published = 0
        self.failures = 0
        self.purge_failures = 0

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

    async def _run(self) -> None:
        # The relay's own polling queries would be a root span every poll interval;
        # its send spans (made by our tracer directly) are unaffected.
        with suppress_instrumentation():
            await self._loop()

    async def _loop(self) -> None:
        backoff = 0.0
        while True:
            try:
                published = await self.publish_pending()
                backoff = 0.0
                self._heartbeat.beat()
            except Exception as error:  # the broker or database is away: wait and retry
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"[:500]
                backoff = min(max(backoff * 2, 0.1), self._settings.relay_max_backoff_s)
                log.warning("outbox relay failed (%s); retrying in %.1fs", error, backoff)
                await asyncio.sleep(backoff)
                continue
            if published < self._settings.relay_batch_size:
                await self._idle()

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
        marked sent while the next batch goes out; a short batch is marked at once.
        Rows the broker refuses for good are parked, not marked.
        """
        rows = await self._next_rows()
        if not rows:
            await self._finish_marking()
            return 0
        full = len(rows) == self._settings.relay_batch_size
        try:
            parked = await self._publish(rows, read_ahead=full)
            if parked:
                rows = [row for row in rows if row.id not in parked]
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
        if in_flight:
            # Not `id > last`: a transaction that began earlier may commit a lower id later.
            query = query.where(col(OutboxMessage.id).not_in(in_flight))
        async with read_transaction(self._sessions) as session:
            connection = await session.connection()
            result = await connection.execute(
                query.order_by(col(OutboxMessage.id)).limit(self._settings.relay_batch_size)
            )
            return [PendingMessage(*row) for row in result.all()]

    async def _publish(self, rows: list[PendingMessage], *, read_ahead: bool = False) -> set[int]:
        """Send `rows` and wait for the broker; returns the ids of the rows it parked.

        A transient failure of any row raises (after parking the refused ones), and
        the batch goes out again.
        """
        # Batches go out together; awaiting them in id order keeps per-key order,
        # and every wait is bounded so a stalled broker cannot hang the relay.
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation,
        # and a relay that ignores cancel never stops.
        timeout = self._settings.send_timeout_s
        refused: list[tuple[PendingMessage, BaseException]] = []
        sending: list[PendingMessage] = []
        deliveries: list[asyncio.Future[Any]] = []
        async with asyncio.timeout(timeout):
            for row in rows:
                try:
                    deliveries.append(await self._send(row))
                except Exception as error:  # e.g. the producer's own size check
                    if not is_permanent(error):
                        raise
                    refused.append((row, error))
                else:
                    sending.append(row)
        if read_ahead:
            # Neither these rows nor the previous batch's, perhaps still being marked.
            in_flight = [row.id for row in rows] + (self._marking[0] if self._marking else [])
            self._read_ahead = asyncio.create_task(self._pending(in_flight))
        async with asyncio.timeout(timeout):
            results = await asyncio.gather(*deliveries, return_exceptions=True)
        failed = [
            (row, result)
            for row, result in zip(sending, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if not failed and not refused:
            return set()
        refused += [(row, error) for row, error in failed if is_permanent(error)]
        if refused:
            await self._park(refused)
        transient = [error for _, error in failed if not is_permanent(error)]
        if transient:
            raise transient[0]
        return {row.id for row, _ in refused}

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

    async def _send(self, row: PendingMessage) -> "asyncio.Future[Any]":
        if not tracing_enabled():
            # No span to make: the trace headers stored with the row go out as they are.
            return await self._producer.send(
                row.topic,
                value=row.value,
                key=row.key.encode(),
                headers=[(name, value.encode()) for name, value in row.headers],
            )
        headers = header_map((name, value.encode()) for name, value in row.headers)
        parent = context_from_headers(headers)
        with tracer().start_as_current_span(
            f"send {row.topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes=_send_attributes(row),
        ):
            # The consumer continues the producer span, not the HTTP request span.
            headers.update(current_trace_headers())
            return await self._producer.send(
                row.topic,
                value=row.value,
                key=row.key.encode(),
                headers=[(name, value.encode()) for name, value in headers.items()],
            )

    async def _mark_sent(self, ids: list[int]) -> None:
        async with transaction(self._sessions) as session:
            await session.exec(
                update(OutboxMessage).where(col(OutboxMessage.id).in_(ids)).values(sent_at=utcnow())
            )

    async def _purge_old(self) -> None:
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


def _send_attributes(row: PendingMessage) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": row.topic,
        "messaging.message.id": row.event_id,
        "messaging.kafka.message.key": row.key,
        "cloudevents.event_type": row.event_type,
    }
