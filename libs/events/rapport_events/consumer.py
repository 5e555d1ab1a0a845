"""The consumer runner: one group per service, inbox de-duplication, dead letters.

One module although long: the fetch loop, the runs of one type, the inbox claim, the
retries and the dead letters share the runner's state (assignment, heartbeat, what is
applied but not committed) and its ordering rule; apart, each would reach into the others.
"""

import asyncio
import bisect
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from opentelemetry import context as otel_context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import inbox, key_reader, shredding
from rapport_events.base import Event
from rapport_events.codec import UPCASTERS, DecodeError, Envelope, decode, header_map
from rapport_events.db import SessionFactory, transaction_reporting_commit
from rapport_events.retry import until_done
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import Heartbeat, Supervised
from rapport_events.tracing import (
    context_from_headers,
    span_context_of,
    tracer,
    tracing_enabled,
)

log = logging.getLogger(__name__)
DATABASE_PING_TIMEOUT_S = 2.0
DATABASE_RETRY_MAX_S = 5.0
MAX_COMMIT_FAILURES = 5

Handler = Callable[..., Awaitable[None]]
HandlerMap = Mapping[type[Event], Sequence[Handler]]
_BATCH = "__rapport_batch__"
H = TypeVar("H", bound=Handler)


def batch(handler: H) -> H:
    """Mark a handler as taking a run of events at once.

    It asks for `events` and/or `envelopes` instead of `event`/`envelope`: the events of
    one type that a fetch brought in a row, in log order, each new to this consumer, so
    it can write them with set-based statements in the runner's transaction.
    """
    setattr(handler, _BATCH, True)
    return handler


def is_batch(handler: Handler) -> bool:
    """Whether `handler` takes runs of events (see `batch`)."""
    return bool(getattr(handler, _BATCH, False))


class ConsumerStuck(Exception):
    """The group member keeps failing to fetch or commit; a fresh one must join."""


class HandlerFailed(Exception):
    """A handler kept failing; the message goes to the dead-letter topic."""


# What the runner itself hands a handler, besides the service's dependencies.
EVENT_ARGUMENTS = frozenset({"event", "envelope", "session"})
BATCH_ARGUMENTS = frozenset({"events", "envelopes", "session"})


def bind_handler(handler: Handler, dependencies: Mapping[str, Any]) -> tuple[str, ...]:
    """The names a handler asks for; a TypeError names any the runner cannot give."""
    wanted = tuple(inspect.signature(handler).parameters)
    given = BATCH_ARGUMENTS if is_batch(handler) else EVENT_ARGUMENTS
    missing = [name for name in wanted if name not in given and name not in dependencies]
    if missing:
        raise TypeError(f"{handler.__qualname__} asks for unknown dependencies {missing}")
    return wanted


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, runner: "ConsumerRunner") -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runner.commit_processed()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("%s assigned %s", self._runner.group_id, sorted(tp.partition for tp in assigned))
        self._runner.joined.set()


class ConsumerRunner:
    """Consumes the customer log for one service and applies each event exactly once.

    For each record: decode, then in one database transaction claim the event id
    in the inbox and run the handlers; commit the offset only after that. A record
    that keeps failing goes to `<topic>.dlq.<service>` with the error in headers.

    The records of one partition fetched together are applied in one transaction (one
    commit instead of one per event), at most `consumer_transaction_max_records` and
    `consumer_transaction_max_s` at a time; when anything in it fails, it is rolled back
    whole and the records are applied one by one, each with its retries. On SQLite the
    time budget bounds how long requests that write wait behind the consumer: writers
    take the lock in arrival order (`db.WriterQueue`), so a request waits for at most
    the transaction in hand.
    """

    def __init__(
        self,
        *,
        service: str,
        settings: KafkaSettings,
        session_factory: SessionFactory,
        handlers: HandlerMap,
        producer: AIOKafkaProducer,
        dependencies: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        # Replicas of a service share its group; another group (a replay) reads the log anew.
        self.group_id = settings.consumer_group or service
        self._settings = settings
        self._sessions = session_factory
        self._handlers = {model.TYPE: list(funcs) for model, funcs in handlers.items()}
        # Types applied in runs: at least one of their handlers takes a batch.
        self._batched = {
            event_type for event_type, funcs in self._handlers.items() if any(map(is_batch, funcs))
        }
        self._producer = producer
        self._dependencies = dict(dependencies or {})
        # Bound once, at start-up: a handler asking for a name nobody gives fails the
        # service's start, not the first event of its type; and no event pays for
        # reading a signature.
        self._bound: dict[Handler, tuple[str, ...]] = {
            handler: bind_handler(handler, self._dependencies)
            for funcs in self._handlers.values()
            for handler in funcs
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._processed: dict[TopicPartition, int] = {}
        self._supervised: Supervised | None = None
        self._key_reader: key_reader.KeyReader | None = None
        self._heartbeat = Heartbeat()
        self._commit_failures = 0
        self._progress_checked_at = time.monotonic()
        self._last_positions: dict[TopicPartition, int] = {}
        self._fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        self._abandoned: set[asyncio.Task[None]] = set()
        self.joined = asyncio.Event()
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0

    @property
    def dead_letter_topic(self) -> str:
        return self._settings.dead_letter_topic(self.service)

    async def start(self) -> None:
        """Connect to the group (raises while the broker is unreachable), then consume under
        supervision: a consumer that fails is closed and a fresh one joins in its place."""
        await self._open()
        self._key_reader = key_reader.start_unless_running(self._settings, self.group_id)
        self._supervised = Supervised(
            f"consumer-{self.service}",
            self._consume,
            policy=self._settings.restart_policy(),
            stalled=self._stall_reason,
        ).start()

    async def _open(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            session_timeout_ms=self._settings.session_timeout_ms,
            heartbeat_interval_ms=self._settings.heartbeat_interval_ms,
            request_timeout_ms=max(self._settings.request_timeout_ms, 40_000),
        )
        self.joined.clear()
        self._last_positions = {}
        self._progress_checked_at = time.monotonic()
        consumer.subscribe([self._settings.topic], listener=_CommitOnRevoke(self))
        # Kept before start() so a close can stop a consumer whose start was interrupted.
        self._consumer = consumer
        await consumer.start()
        self._heartbeat.beat()

    async def _consume(self) -> None:
        """One consumer's life: join if needed, consume; on failure leave, for a fresh start."""
        if self._consumer is None:
            await self._open()
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Its records in hand were rolled back; what committed is committed here. Bounded:
            # a member the broker forgot may wait forever on its last commit or its leave.
            await self._leave_within_bound()
            raise

    async def _leave_within_bound(self) -> None:
        """Commit what is applied and leave within a bound, in a task of its own: aiokafka's
        stop can ignore a cancel while it waits on a broker that forgot the member, so
        neither the next member nor a shutdown waits for it."""
        offsets = self._take_processed()
        consumer, self._consumer = self._consumer, None
        self.joined.clear()
        if consumer is None:
            return
        leaving = asyncio.create_task(self._leave(consumer, offsets))
        done, _ = await asyncio.wait({leaving}, timeout=self._settings.send_timeout_s)
        if leaving not in done:
            log.warning("%s left without waiting for the broker", self.group_id)
            self._abandoned.add(leaving)
            leaving.add_done_callback(self._abandoned.discard)
        elif not leaving.cancelled() and leaving.exception() is not None:
            log.warning("%s could not leave cleanly: %r", self.group_id, leaving.exception())

    async def _leave(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        if offsets:
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as error:
                # Redelivered to the next member; its inbox drops what was applied.
                log.warning("last offset commit of %s failed: %s", self.group_id, error)
        await consumer.stop()

    async def stop(self) -> None:
        """Roll back the record in hand, commit what is applied and leave the group."""
        if self._supervised is not None:
            await self._supervised.stop()
            self._supervised = None
        if self._key_reader is not None:
            await self._key_reader.stop()
            self._key_reader = None
        await self._leave_within_bound()

    @property
    def running(self) -> bool:
        return self._supervised is not None and self._supervised.running

    @property
    def supervised(self) -> Supervised | None:
        """The supervised consuming task, for /readyz and the restart metric."""
        return self._supervised

    @property
    def kafka_consumer(self) -> AIOKafkaConsumer | None:
        """The group member, for metrics that read its assignment and offsets."""
        return self._consumer

    def _stall_reason(self) -> str | None:
        if not self.joined.is_set() and self._heartbeat.age_s() > self._settings.stall_after_s:
            return f"not in its group after {self._heartbeat.age_s():.0f}s"
        if self._heartbeat.age_s() > self._settings.stall_after_s:
            return f"no fetch completed for {self._heartbeat.age_s():.0f}s"
        return None

    async def _run(self) -> None:
        assert self._consumer is not None
        failing_since: float | None = None
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=200, max_records=self._settings.consumer_max_records
                )
                failing_since = None
            except KafkaError as error:
                # A broker that restarted may have forgotten this member (UnknownMemberId)
                # or the log: past a while, a fresh member rejoins instead of retrying forever.
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self._settings.consumer_rejoin_after_s:
                    raise ConsumerStuck(f"fetches failing since {error!r}") from error
                log.warning("%s fetch failed (%s); retrying", self.group_id, error)
                await asyncio.sleep(0.5)
                continue
            size = self._records_per_transaction()
            for partition, records in batches.items():
                for first in range(0, len(records), size):
                    await self._handle_records(partition, records[first : first + size])
            if batches:
                await self.commit_processed()
            await self._check_progress()
            if self._commit_failures >= MAX_COMMIT_FAILURES:
                # A member the broker no longer knows (UnknownMemberId after a broker
                # restart) fails every commit: rejoin as a fresh member.
                self._commit_failures = 0
                raise ConsumerStuck(f"{MAX_COMMIT_FAILURES} offset commits in a row failed")
            self._heartbeat.beat()

    async def _check_progress(self) -> None:
        """Every `consumer_stuck_after_s`: a partition whose position has not moved although
        the log holds records past it means a stuck member; it leaves for a fresh one."""
        assert self._consumer is not None
        now = time.monotonic()
        if now - self._progress_checked_at < self._settings.consumer_stuck_after_s:
            return
        self._progress_checked_at = now
        positions: dict[TopicPartition, int] = {}
        behind: list[TopicPartition] = []
        for partition in self._consumer.assignment():
            try:
                async with asyncio.timeout(DATABASE_PING_TIMEOUT_S):
                    positions[partition] = await self._consumer.position(partition)
            except (KafkaError, TimeoutError, IllegalStateError):
                continue  # moved away in a rebalance, or no position yet: judge it next time
            highwater = self._consumer.highwater(partition)
            if highwater is not None and highwater > positions[partition]:
                behind.append(partition)
        stuck = [p for p in behind if self._last_positions.get(p) == positions[p]]
        self._last_positions = positions
        if stuck:
            # Seen after a broker restart: the member fetches some partitions no more.
            where = ", ".join(
                f"{p.partition} at {positions[p]} of {self._consumer.highwater(p)}"
                for p in sorted(stuck, key=lambda p: p.partition)
            )
            # A broker that must read the log back from its storage (the dev broker after a
            # restart) may answer a short fetch wait with nothing, again and again: the next
            # member waits longer.
            self._fetch_max_wait_ms = min(max(self._fetch_max_wait_ms * 4, 200), 1000)
            log.warning(
                "%s rejoins with fetches that may wait %d ms",
                self.group_id,
                self._fetch_max_wait_ms,
            )
            raise ConsumerStuck(f"no progress on partitions {where}")

    def _records_per_transaction(self) -> int:
        return max(1, self._settings.consumer_transaction_max_records)

    async def apply_fetched(
        self, partition: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Apply records that a caller with a consumer of its own fetched (a replay), as a
        fetch of this runner's is applied: in shared transactions, poison to the dead letters.
        The caller commits its offsets once this returns."""
        size = self._records_per_transaction()
        for first in range(0, len(records), size):
            await self._handle_records(partition, records[first : first + size])
        self._processed.pop(partition, None)

    async def commit_processed(self) -> None:
        """Commit the offsets after the records whose transactions committed."""
        if self._consumer is None or not self._processed:
            return
        offsets = self._take_processed()
        try:
            await self._consumer.commit(offsets)
            self._commit_failures = 0
        except (CommitFailedError, KafkaError) as error:
            # Partitions that moved to another member are redelivered there and the inbox
            # drops what was already applied; those still held are committed next time.
            log.warning("offset commit failed for %s: %s", self.group_id, error)
            self._commit_failures += 1
            self._keep_for_next_commit(offsets)

    def _take_processed(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offsets to commit (after the records whose transactions committed), taken."""
        offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in self._processed.items()}
        self._processed = {}
        return offsets

    def _keep_for_next_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert self._consumer is not None
        held = self._consumer.assignment()
        for partition, committed in offsets.items():
            if partition in held and partition not in self._processed:
                self._processed[partition] = committed.offset

    def _ignores(self, event_type: str) -> bool:
        # A well-formed type this service has no handler for is skipped undecoded;
        # a message without a type is malformed and goes to the dead letters.
        return bool(event_type) and event_type not in self._handlers and event_type not in UPCASTERS

    async def _handle_records(
        self, partition: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Apply a partition's fetched records in as few transactions as the time budget
        allows; one by one when a shared transaction fails."""
        await shredding.keys().wait_for(_data_keys(records))
        while len(records) > 1:
            try:
                taken = await self._apply_together(records)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("%s applies %d records singly: %r", self.group_id, len(records), error)
                break
            self._processed[partition] = records[taken - 1].offset + 1
            records = records[taken:]
        for record in records:
            await self._handle_record(record)
            self._processed[partition] = record.offset + 1

    async def _apply_together(self, records: list[ConsumerRecord[bytes, bytes]]) -> int:
        """Records in one transaction until the time budget is spent; returns how many it
        took. Counters move only once the transaction committed.

        Records of a type with a batch handler wait in a pending run of their type, applied
        with one inbox statement and one call per handler. A customer's events keep their
        log order: runs are applied in the order `_PendingRuns` puts them in, and every
        pending run before a record of a type without a batch handler (rare types such as
        merges may touch several customers).
        """
        tally = _Tally()
        taken = 0
        deadline: float | None = None
        runs = _PendingRuns()
        async with transaction_reporting_commit(self._sessions, tally.count_into(self)) as session:
            for record in records:
                if deadline is not None and time.monotonic() > deadline:
                    break
                taken += 1
                headers = header_map(record.headers)
                event_type = headers.get("ce_type", "")
                if self._ignores(event_type):
                    continue
                if deadline is None:
                    deadline = await self._budget_from_now(session)
                if event_type in self._batched:
                    runs.add(
                        event_type, record, headers, decode(record.value, record.headers, headers)
                    )
                    continue
                for run in runs.take_all():
                    await self._apply_run(session, run, tally)
                with self._process_span(record, headers):
                    envelope = decode(record.value, record.headers)
                    handlers = self._handlers.get(envelope.type)
                    if not handlers:
                        continue
                    if await self._apply_in(session, envelope, handlers):
                        tally.applied += 1
                    else:
                        tally.duplicates += 1
            for run in runs.take_all():
                await self._apply_run(session, run, tally)
        return taken

    async def _apply_run(self, session: AsyncSession, run: "_Run", tally: "_Tally") -> None:
        """Claim a run's ids with one statement and hand the new events to the handlers."""
        with self._run_span(run):
            claimed = await inbox.claim_all(
                session, self.group_id, [(envelope.id, envelope.type) for envelope in run.envelopes]
            )
            fresh = run.first_of_each(claimed)
            tally.applied += len(fresh)
            tally.duplicates += len(run.envelopes) - len(fresh)
            if fresh:
                await self._run_handlers(session, fresh, self._handlers[fresh[0].type])

    def _run_span(self, run: "_Run") -> Any:
        # One span for the run, linked to each message's producer span (the OpenTelemetry
        # messaging conventions' batch processing). A run whose messages all come from
        # one trace (one message, or one request's events) continues that trace, so an
        # operator follows a request to every consumer whatever shares its fetch.
        first = run.records[0]
        if not tracing_enabled():
            return contextlib.nullcontext()
        links = [link for headers in run.headers for link in _links(headers)]
        return tracer().start_as_current_span(
            f"process {first.topic}",
            context=_one_trace_context(run.headers, links),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": first.topic,
                "messaging.destination.partition.id": str(first.partition),
                "messaging.consumer.group.name": self.group_id,
                "messaging.batch.message_count": len(run.records),
                "cloudevents.event_type": run.type,
            },
        )

    async def _budget_from_now(self, session: AsyncSession) -> float:
        """The deadline of a shared transaction, counted from when it holds its locks."""
        # The budget bounds how long the transaction holds its locks (on SQLite the only
        # write lock), whatever the handlers cost. Taking the connection first waits for
        # SQLite's lock, so a wait behind other writers does not shrink the batch.
        await session.connection()
        return time.monotonic() + self._settings.consumer_transaction_max_s

    def _process_span(
        self, record: ConsumerRecord[bytes, bytes], headers: Mapping[str, str]
    ) -> Any:
        return tracer().start_as_current_span(
            f"process {record.topic}",
            context=context_from_headers(headers),
            kind=SpanKind.CONSUMER,
            links=_links(headers),
            attributes=_process_attributes(record, headers, self.group_id),
        )

    async def _handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Apply one record; whatever it raises, it goes to the dead letters and we move on."""
        try:
            await self._apply_record(record)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # RecursionError, MemoryError, a bad header: a poison record
            log.exception("%s cannot handle %s@%d", self.group_id, record.topic, record.offset)
            await self._dead_letter(record, error, attempts=1)

    async def _apply_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        headers = header_map(record.headers)
        if self._ignores(headers.get("ce_type", "")):
            return
        with self._process_span(record, headers) as span:
            try:
                envelope = decode(record.value, record.headers)
            except DecodeError as error:
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.set_attribute("error.type", type(error).__qualname__)
                await self._dead_letter(record, error, attempts=1)
                return
            try:
                await self._apply_with_retries(envelope)
            except HandlerFailed as failure:
                span.set_status(Status(StatusCode.ERROR, str(failure.__cause__)))
                span.set_attribute("error.type", type(failure.__cause__ or failure).__qualname__)
                span.record_exception(failure.__cause__ or failure)
                await self._dead_letter(
                    record, failure.__cause__ or failure, self._settings.consumer_max_attempts
                )

    async def _apply_with_retries(self, envelope: Envelope) -> None:
        handlers = self._handlers.get(envelope.type)
        if not handlers:
            return
        attempts = self._settings.consumer_max_attempts
        attempt = 0
        outage_backoff = self._settings.consumer_retry_backoff_s
        while True:
            try:
                await self.apply(envelope, handlers)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not await self._database_answers():
                    # The database is away, not the message at fault: wait without using
                    # up attempts, or an outage would dead-letter every event it meets.
                    log.warning("%s cannot reach its database (%r); waiting", self.group_id, error)
                    await asyncio.sleep(outage_backoff)
                    outage_backoff = min(outage_backoff * 2, DATABASE_RETRY_MAX_S)
                    continue
                attempt += 1
                log.warning(
                    "%s failed on %s %s (attempt %d/%d): %r",
                    self.group_id,
                    envelope.type,
                    envelope.id,
                    attempt,
                    attempts,
                    error,
                )
                if attempt == attempts:
                    raise HandlerFailed(str(error)) from error
                await asyncio.sleep(self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1))

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(DATABASE_PING_TIMEOUT_S), self._sessions() as session:
                await session.scalar(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def apply(self, envelope: Envelope, handlers: Sequence[Handler]) -> bool:
        """Apply one event in one transaction; False when the inbox says it was applied."""
        tally = _Tally()
        async with transaction_reporting_commit(self._sessions, tally.count_into(self)) as session:
            applied = await self._apply_in(session, envelope, handlers)
            if applied:
                tally.applied = 1
            else:
                tally.duplicates = 1
        return applied

    async def _apply_in(
        self, session: AsyncSession, envelope: Envelope, handlers: Sequence[Handler]
    ) -> bool:
        """Claim the event in the inbox and run its handlers on the caller's transaction."""
        if not await inbox.claim(session, self.group_id, envelope.id, envelope.type):
            return False
        await self._run_handlers(session, [envelope], handlers)
        return True

    async def _run_handlers(
        self, session: AsyncSession, envelopes: Sequence[Envelope], handlers: Sequence[Handler]
    ) -> None:
        """Each handler in turn: a batch handler once with them all, another once per event."""
        for handler in handlers:
            names = self._names_of(handler)
            if is_batch(handler):
                available = {
                    **self._dependencies,
                    "events": [envelope.data for envelope in envelopes],
                    "envelopes": envelopes,
                    "session": session,
                }
                await handler(**{name: available[name] for name in names})
                continue
            for envelope in envelopes:
                available = {
                    **self._dependencies,
                    "event": envelope.data,
                    "envelope": envelope,
                    "session": session,
                }
                await handler(**{name: available[name] for name in names})

    def _names_of(self, handler: Handler) -> tuple[str, ...]:
        """The bound names of a handler of the map, or of one handed to `apply`."""
        names = self._bound.get(handler)
        if names is None:
            names = self._bound[handler] = bind_handler(handler, self._dependencies)
        return names

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, attempts: int
    ) -> None:
        """Publish to the dead-letter topic; retried until it lands so nothing is lost."""
        headers = list(record.headers or ()) + [
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error_message", str(error)[:4000].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
        ]
        retrying = until_done(
            errors=(KafkaError, OSError, TimeoutError),  # OSError: connection lost
            first_wait_s=0.1,
            max_wait_s=self._settings.relay_max_backoff_s,
            log=log,
            what="dead-letter publish",
        )
        await retrying(self._publish_dead_letter, record, headers)
        self.dead_lettered += 1
        log.error(
            "%s dead-lettered %s[%d]@%d: %s",
            self.group_id,
            record.topic,
            record.partition,
            record.offset,
            error,
        )

    async def _publish_dead_letter(
        self, record: ConsumerRecord[bytes, bytes], headers: list[tuple[str, bytes]]
    ) -> None:
        async with asyncio.timeout(self._settings.send_timeout_s):
            delivery = await self._producer.send(
                self.dead_letter_topic, value=record.value, key=record.key, headers=headers
            )
            await delivery


@dataclass
class _Run:
    """Consecutive records of one batched type, decoded, waiting to be applied together."""

    type: str
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    headers: list[Mapping[str, str]] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)

    def add(
        self, record: ConsumerRecord[bytes, bytes], headers: Mapping[str, str], envelope: Envelope
    ) -> None:
        self.records.append(record)
        self.headers.append(headers)
        self.envelopes.append(envelope)

    def first_of_each(self, claimed: set[str]) -> list[Envelope]:
        """The envelopes whose ids this transaction claimed, each id once, in log order."""
        fresh, seen = [], set()
        for envelope in self.envelopes:
            if envelope.id in claimed and envelope.id not in seen:
                seen.add(envelope.id)
                fresh.append(envelope)
        return fresh


class _PendingRuns:
    """The runs of a transaction not yet applied, in the order they will be applied.

    A record joins the first run of its type at or after the run that holds its
    customer's (record key's) previous event, or starts a new run at the end: applying
    the runs in order keeps every customer's log order, and a window where types
    interleave still makes a few long runs instead of many short ones.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._of_type: dict[str, list[int]] = {}  # type -> indexes of its runs, ascending
        self._latest: dict[bytes | None, int] = {}  # key -> index of its latest event's run

    def add(
        self,
        event_type: str,
        record: ConsumerRecord[bytes, bytes],
        headers: Mapping[str, str],
        envelope: Envelope,
    ) -> None:
        index = self._run_for(event_type, self._latest.get(record.key, 0))
        self._runs[index].add(record, headers, envelope)
        self._latest[record.key] = index

    def _run_for(self, event_type: str, earliest: int) -> int:
        indexes = self._of_type.setdefault(event_type, [])
        position = bisect.bisect_left(indexes, earliest)
        if position < len(indexes):
            return indexes[position]
        self._runs.append(_Run(event_type))
        indexes.append(len(self._runs) - 1)
        return len(self._runs) - 1

    def take_all(self) -> list["_Run"]:
        """Remove every run, in the order they must be applied."""
        runs = self._runs
        self._runs, self._of_type, self._latest = [], {}, {}
        return runs


@dataclass
class _Tally:
    """What one transaction applied, added to the counters only once it committed."""

    applied: int = 0
    duplicates: int = 0

    def count_into(self, consumer: "ConsumerRunner") -> Callable[[], None]:
        def count() -> None:
            consumer.applied += self.applied
            consumer.duplicates += self.duplicates

        return count


def _data_keys(records: Sequence[ConsumerRecord[bytes, bytes]]) -> set[str]:
    """The data key ids of the sealed records: each must be read before the record is
    applied, or its personal fields would be missing from the projection."""
    return {
        value.decode("utf-8", "replace")
        for record in records
        for name, value in record.headers or ()
        if name == shredding.DATA_KEY_HEADER and value
    }


def _links(headers: Mapping[str, str]) -> list[Link]:
    producer = span_context_of(headers)
    return [Link(producer)] if producer else []


def _one_trace_context(
    headers: Sequence[Mapping[str, str]], links: Sequence[Link]
) -> otel_context.Context:
    """The producers' context when every message of a run carries the same trace, else
    an empty one (the run starts its own trace, linked to each producer)."""
    traces = {link.context.trace_id for link in links}
    if len(links) == len(headers) and len(traces) == 1:
        return context_from_headers(headers[0])
    return otel_context.Context()


def _process_attributes(
    record: ConsumerRecord[bytes, bytes], headers: Mapping[str, str], group: str
) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.consumer.group.name": group,
        "messaging.kafka.offset": record.offset,
        "messaging.kafka.message.key": (record.key or b"").decode("utf-8", "replace"),
        "messaging.message.id": headers.get("ce_id", ""),
        "cloudevents.event_type": headers.get("ce_type", ""),
    }
