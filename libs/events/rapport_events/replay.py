"""Replay: rebuild a service's projection from the log into a fresh database, then swap it in.

Two steps, each a command of the service (`python -m rapport_<service>.replay build|swap`):

- `build`, while the service runs: migrate a fresh database, copy the service's own tables
  (what the log cannot give back) from the live database, and apply the log from its start
  with the service's own handlers under a new consumer group, fetch by fetch (the batch
  path), never past the offsets the live group has committed. It stops once it has caught up
  with them. Interrupted, it resumes where its group committed; the inbox drops what a
  transaction already applied.
- `swap`, once the service is stopped: apply the rest up to the live group's final offsets,
  discard the events the replay wrote to its outbox (the live service published those
  effects already), copy the service's own tables again (now final), and record the swap.
  The operator then starts the service on the new database and the new group, which goes
  on from exactly where the old group stopped: nothing is applied twice, nothing is skipped.

A service declares what replay rebuilds and what it keeps in a `ReplayPlan`; a table it
does not classify, or a service that cannot be replayed, is refused with the reason.

One module although long: it is one command, read top to bottom; build and swap share the
plan, the offsets and the copying of the service's own tables.
"""

import argparse
import asyncio
import hashlib
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

from rapport_events import key_reader
from rapport_events.codec import UPCASTERS, header_map
from rapport_events.consumer import ConsumerRunner, HandlerMap, is_batch
from rapport_events.db import create_engine, session_factory
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.types import CustomerErased, CustomerMerged

log = logging.getLogger(__name__)

# Rows per INSERT when copying a table (SQLAlchemy splits further under the driver's limits).
COPY_CHUNK = 1000
# How often a build reads the live group's committed offsets while following it.
LIVE_OFFSETS_EVERY_S = 2.0
# A replay that fetches nothing for this long while behind its target stops with an error.
STALLED_AFTER_S = 60.0
# A replay has its database to itself: larger transactions than a live consumer's.
REPLAY_TRANSACTION_RECORDS = 20_000
REPLAY_TRANSACTION_S = 5.0
REPLAY_FETCH_RECORDS = 20_000
REPLAY_SQLITE_CACHE_KB = 256_000

STATE = Table(
    "rapport_replay",
    MetaData(),
    Column("service", String(64), primary_key=True),
    Column("group_id", String(200), nullable=False),
    Column("live_group", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("guard_digest", String(64), nullable=False),
    Column("swapped_at", DateTime(timezone=True), nullable=True),
)
Reconcile = Callable[[AsyncConnection], Awaitable[None]]


class ReplayRefused(Exception):
    """The replay cannot be done safely; the message says why and what to do."""


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of one service rebuilds from the log and what it copies as it is."""

    service: str
    handlers: HandlerMap
    migrations: str
    version_table: str
    # The projection: tables the handlers build from the log alone.
    rebuilds: tuple[str, ...] = ()
    # The service's own records (created through its API, or by its workers): copied.
    keeps: tuple[str, ...] = ()
    # Kept tables the projection is computed from: changed during the replay, the rebuilt
    # rows no longer match them, so the swap refuses.
    guards: tuple[str, ...] = ()
    # Run in the swap's transaction once the kept tables are copied: what the service's
    # own records change in the projection (campaign's unsubscribe suppressions).
    reconcile: Reconcile | None = None
    # Set when the service cannot be replayed: the reason, shown to the operator.
    refusal: str | None = None

    def infrastructure(self) -> set[str]:
        return {"inbox", "outbox", self.version_table, STATE.name}


@dataclass
class Offsets:
    """Per partition: where the replay starts, where it is, where it must stop."""

    start: dict[TopicPartition, int] = field(default_factory=dict)
    position: dict[TopicPartition, int] = field(default_factory=dict)
    target: dict[TopicPartition, int] = field(default_factory=dict)
    log_end: dict[TopicPartition, int] = field(default_factory=dict)

    def behind(self) -> list[TopicPartition]:
        return [tp for tp, target in self.target.items() if self.position[tp] < target]

    def done(self) -> int:
        return sum(self.position[tp] - self.start[tp] for tp in self.position)

    def total(self) -> int:
        return sum(max(self.target[tp], self.position[tp]) - self.start[tp] for tp in self.target)


class Progress:
    """A progress bar with rate and ETA on a terminal; a line every few seconds otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._shown_at = 0.0
        self._tty = self.stream.isatty()

    def show(self, offsets: Offsets, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._shown_at < (0.2 if self._tty else 5.0):
            return
        self._shown_at = now
        line = self.line(offsets, now - self.started)
        end = "\n" if final or not self._tty else ""
        self.stream.write(("\r" if self._tty else "") + line + end)
        self.stream.flush()

    def line(self, offsets: Offsets, elapsed: float) -> str:
        done, total = offsets.done(), offsets.total()
        share = done / total if total else 1.0
        filled = int(share * self.width)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else None
        log_end = (
            f"; log end {sum(offsets.log_end.values()):,} (fetch high-water marks)"
            if offsets.log_end
            else ""
        )
        return (
            f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {share:4.0%} "
            f"{done:,}/{total:,} events {rate:,.0f}/s ETA {_clock(eta)}{log_end}"
        )


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- the databases --------------------------------------------------------------------------------


def _tables(names: Sequence[str]) -> list[Table]:
    """The tables by name, parents before children (SQLModel's metadata knows every model)."""
    wanted = set(names)
    return [table for table in SQLModel.metadata.sorted_tables if table.name in wanted]


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def check_plan(plan: ReplayPlan, engine: AsyncEngine) -> None:
    """Refuse a service that cannot be replayed, or a table the plan does not classify."""
    if plan.refusal:
        raise ReplayRefused(f"{plan.service} cannot be replayed: {plan.refusal}")
    unknown = await _table_names(engine) - set(plan.rebuilds) - set(plan.keeps)
    unknown -= plan.infrastructure()
    if unknown:
        raise ReplayRefused(
            f"{plan.service}'s replay plan does not say whether to rebuild or keep "
            f"{', '.join(sorted(unknown))}: classify them in its replay.py first"
        )
    missing = {*plan.rebuilds, *plan.keeps} - {
        t.name for t in _tables([*plan.rebuilds, *plan.keeps])
    }
    if missing:
        raise ReplayRefused(f"no model for {', '.join(sorted(missing))}")


async def _version(engine: AsyncEngine, table: str) -> str | None:
    async with engine.connect() as connection:
        return await connection.scalar(text(f"SELECT version_num FROM {table}"))  # noqa: S608


async def _rows(connection: AsyncConnection, names: Sequence[str]) -> int:
    total = 0
    for table in _tables(names):
        total += int(await connection.scalar(select(func.count()).select_from(table)) or 0)
    return total


async def digest(engine: AsyncEngine, names: Sequence[str]) -> str:
    """A fingerprint of the rows of `names`, to tell whether they changed."""
    hashed = hashlib.sha256()
    async with engine.connect() as connection:
        for table in _tables(names):
            order = list(table.primary_key.columns) or list(table.columns)
            result = await connection.execute(select(table).order_by(*order))
            for row in result:
                hashed.update(repr(tuple(row)).encode())
    return hashed.hexdigest()


async def copy_tables(source: AsyncEngine, target: AsyncConnection, names: Sequence[str]) -> int:
    """Replace the rows of `names` in `target` with the rows in `source`; rows copied."""
    tables = _tables(names)
    for table in reversed(tables):
        await target.execute(delete(table))
    copied = 0
    async with source.connect() as reader:
        for table in tables:
            result = await reader.stream(select(table))
            async for chunk in result.partitions(COPY_CHUNK):
                await target.execute(insert(table), [dict(row._mapping) for row in chunk])
                copied += len(chunk)
            await _advance_sequences(target, table)
    return copied


async def _advance_sequences(connection: AsyncConnection, table: Table) -> None:
    """On PostgreSQL, move an id sequence past the ids just copied in."""
    if connection.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if not isinstance(column.type, Integer):
            continue
        await connection.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"(SELECT COALESCE(MAX({column.name}), 0) + 1 FROM {table.name}), false)"  # noqa: S608
            ),
            {"table": table.name, "column": column.name},
        )


# --- the log --------------------------------------------------------------------------------------


async def live_committed(
    settings: KafkaSettings, group: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The offsets a group has committed (0 where none): stored by the broker, so right on
    the dev broker too, and read without joining the group."""
    peek = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        client_id=f"{group}-replay-peek",
        enable_auto_commit=False,
    )
    await peek.start()
    try:
        return {tp: (await peek.committed(tp)) or 0 for tp in partitions}
    finally:
        await peek.stop()


@dataclass
class Replayer:
    """Applies the log to a database with a service's handlers under a consumer group of its own."""

    plan: ReplayPlan
    settings: KafkaSettings
    engine: AsyncEngine
    group: str
    live_group: str
    dependencies: Mapping[str, Any]
    progress: Progress
    applied: int = 0
    dead_lettered: int = 0

    def __post_init__(self) -> None:
        self._barriers = barrier_types(self.plan.handlers)

    async def run(self, *, follow: bool) -> Offsets:
        """Apply up to the live group's committed offsets: read again as it moves (`follow`,
        the service still running), or as read once (it is stopped)."""
        settings = self.settings.model_copy(
            update={
                "consumer_group": self.group,
                "consumer_transaction_max_records": REPLAY_TRANSACTION_RECORDS,
                "consumer_transaction_max_s": REPLAY_TRANSACTION_S,
            }
        )
        await ensure_topics(
            settings, [settings.topic, settings.dead_letter_topic(self.plan.service)]
        )
        producer = create_producer(settings, client_id=f"{self.group}-dead-letters")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=self.group,
            client_id=f"{self.group}-replay",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
        )
        await producer.start()
        await consumer.start()
        # The sealed fields of the log open with the keys this reads (rapport_events.shredding).
        keys = key_reader.start_unless_running(settings, self.group)
        try:
            runner = ConsumerRunner(
                service=self.plan.service,
                settings=settings,
                session_factory=session_factory(self.engine),
                handlers=self.plan.handlers,
                producer=producer,
                dependencies=self.dependencies,
            )
            offsets = await self._apply(consumer, runner, follow=follow)
            self.applied += runner.applied
            self.dead_lettered += runner.dead_lettered
            return offsets
        finally:
            if keys is not None:
                await keys.stop()
            await consumer.stop()
            await producer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self.settings.topic
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
            numbers = consumer.partitions_for_topic(topic) or set()
        return [TopicPartition(topic, n) for n in sorted(numbers)]

    async def _apply(
        self, consumer: AIOKafkaConsumer, runner: ConsumerRunner, *, follow: bool
    ) -> Offsets:
        partitions = await self._partitions(consumer)
        consumer.assign(partitions)
        offsets = Offsets()
        for tp in partitions:
            # Where this group stopped (a resumed replay), else the start of the log.
            offsets.start[tp] = offsets.position[tp] = (await consumer.committed(tp)) or 0
            consumer.seek(tp, offsets.position[tp])
        offsets.target = await live_committed(self.settings, self.live_group, partitions)
        read_at = time.monotonic()
        moved_at = time.monotonic()
        while True:
            behind = offsets.behind()
            if not behind:
                if not follow:
                    break
                offsets.target = await live_committed(self.settings, self.live_group, partitions)
                read_at = time.monotonic()
                if not offsets.behind():
                    break
                continue
            _fetch_only(consumer, partitions, behind)
            batches = await _fetch_window(consumer, behind)
            commits = await self._apply_fetch(consumer, runner, offsets, batches)
            if commits:
                # After the database commit, as the live consumer does.
                await consumer.commit(commits)
                moved_at = time.monotonic()
            elif time.monotonic() - moved_at > STALLED_AFTER_S:
                raise ReplayRefused(
                    f"no record fetched for {STALLED_AFTER_S:.0f}s while behind on partitions "
                    f"{[tp.partition for tp in behind]}: is the broker up, does the log still "
                    "hold them?"
                )
            self.progress.show(offsets)
            if follow and time.monotonic() - read_at > LIVE_OFFSETS_EVERY_S:
                offsets.target = await live_committed(self.settings, self.live_group, partitions)
                read_at = time.monotonic()
        self.progress.show(offsets, final=True)
        return offsets

    async def _apply_fetch(
        self,
        consumer: AIOKafkaConsumer,
        runner: ConsumerRunner,
        offsets: Offsets,
        batches: Mapping[TopicPartition, list[Any]],
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Apply a fetch's records below each partition's target; the offsets to commit.

        Never past the target: what the live group has not applied yet is the new group's
        to apply after the swap, with every effect (the replay discards its outbox). The
        partitions' records go together, regrouped into long runs of one type: the whole
        fetch is applied before any offset is committed, so the order within it is free
        as long as each customer's is kept.
        """
        wanted: list[Any] = []
        moved: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            if consumer.highwater(tp) is not None:
                offsets.log_end[tp] = consumer.highwater(tp) or 0
            below = [record for record in records if record.offset < offsets.target[tp]]
            wanted.extend(below)
            if below:
                moved[tp] = below[-1].offset + 1
            if len(below) < len(records):
                # A record at or past the target was fetched: none lies between (offsets
                # are read in order), so the partition is at its target. Fetch again from
                # there when the target moves.
                moved[tp] = max(moved.get(tp, 0), offsets.target[tp], offsets.position[tp])
                consumer.seek(tp, moved[tp])
        if wanted:
            first = TopicPartition(wanted[0].topic, wanted[0].partition)
            await runner.apply_fetched(first, regroup(wanted, self._barriers))
        commits = {}
        for tp, position in moved.items():
            if position != offsets.position[tp]:
                offsets.position[tp] = position
                commits[tp] = OffsetAndMetadata(position, "")
        return commits


async def _fetch_window(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, list[Any]]:
    """Fetches until REPLAY_FETCH_RECORDS records are in hand or none come at once: a
    larger window holds more customers, so its runs of one type are longer."""
    window: dict[TopicPartition, list[Any]] = {}
    held = 0
    timeout_ms = 500
    while held < REPLAY_FETCH_RECORDS:
        batches = await consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=REPLAY_FETCH_RECORDS - held
        )
        if not batches:
            break
        for tp, records in batches.items():
            window.setdefault(tp, []).extend(records)
            held += len(records)
        timeout_ms = 50
    return window


def regroup(records: Sequence[Any], barriers: Collection[str]) -> list[Any]:
    """The records reordered into runs of one type as long as possible, so batch handlers
    get many events per call: each key's (customer's) records stay in log order, and a
    record of a type in `barriers` (one handled event at a time: merges, erasures, whose
    effects reach other customers) keeps its place, nothing moving across it."""
    ordered: list[Any] = []
    between: list[Any] = []
    for record in records:
        if header_map(record.headers).get("ce_type", "") in barriers:
            ordered.extend(_longest_runs(between))
            ordered.append(record)
            between = []
        else:
            between.append(record)
    ordered.extend(_longest_runs(between))
    return ordered


def _longest_runs(records: Sequence[Any]) -> list[Any]:
    """Each round takes, from the front of every key's queue, the records of the type most
    keys have in front: a key's records leave its queue in order."""
    queues: dict[bytes | None, deque[tuple[str, Any]]] = {}
    for record in records:
        kind = header_map(record.headers).get("ce_type", "")
        queues.setdefault(record.key, deque()).append((kind, record))
    ordered: list[Any] = []
    while queues:
        kind = Counter(queue[0][0] for queue in queues.values()).most_common(1)[0][0]
        for key in list(queues):
            queue = queues[key]
            while queue and queue[0][0] == kind:
                ordered.append(queue.popleft()[1])
            if not queue:
                del queues[key]
    return ordered


def barrier_types(handlers: HandlerMap) -> set[str]:
    """Types applied one event at a time (no batch handler), old versions to upcast, and
    merges and erasures always: they change what other customers' events resolve to."""
    single = {model.TYPE for model, funcs in handlers.items() if not any(map(is_batch, funcs))}
    return single | set(UPCASTERS) | {CustomerMerged.TYPE, CustomerErased.TYPE}


def _fetch_only(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    wanted: Sequence[TopicPartition],
) -> None:
    """Fetch the partitions still behind; pause those at their target."""
    wanted_set = set(wanted)
    consumer.pause(*[tp for tp in partitions if tp not in wanted_set])
    consumer.resume(*wanted)


# --- the two steps --------------------------------------------------------------------------------


@dataclass
class Replay:
    """One service's replay into the database at `into_url`."""

    plan: ReplayPlan
    live_url: str
    into_url: str
    settings: KafkaSettings
    dependencies: Mapping[str, Any] = field(default_factory=dict)
    stream: TextIO | None = None

    @property
    def live_group(self) -> str:
        return self.settings.consumer_group or self.plan.service

    def _say(self, message: str) -> None:
        print(message, file=self.stream or sys.stderr, flush=True)

    async def build(self, group: str | None = None) -> Replayer:
        """Build (or resume building) the projection until it has caught up with the live group."""
        if _same_database(self.live_url, self.into_url):
            raise ReplayRefused("the replay must build into another database than the live one")
        live, into = create_engine(self.live_url), _replay_engine(self.into_url)
        try:
            await check_plan(self.plan, live)
            state = await self._prepare(live, into, group)
            replayer = self._replayer(into, state["group_id"])
            await replayer.run(follow=True)
            self._say(
                f"{self.plan.service}: caught up with group {self.live_group} "
                f"({replayer.applied:,} events applied, {replayer.dead_lettered} dead-lettered) "
                f"into {_redacted(self.into_url)} under group {state['group_id']}."
            )
            return replayer
        finally:
            await live.dispose()
            await into.dispose()

    def _replayer(self, into: AsyncEngine, group: str) -> Replayer:
        return Replayer(
            plan=self.plan,
            settings=self.settings,
            engine=into,
            group=group,
            live_group=self.live_group,
            dependencies=self.dependencies,
            progress=Progress(f"replay {self.plan.service}", self.stream),
        )

    async def _prepare(
        self, live: AsyncEngine, into: AsyncEngine, group: str | None
    ) -> Mapping[str, Any]:
        """Migrate the new database; a fresh one gets the kept tables and its replay record."""
        await upgrade(into, self.plan.migrations, version_table=self.plan.version_table)
        live_version = await _version(live, self.plan.version_table)
        if live_version != await _version(into, self.plan.version_table):
            raise ReplayRefused(
                f"the live database is at revision {live_version}, this code at "
                f"{await _version(into, self.plan.version_table)}: run the same version"
            )
        async with into.begin() as connection:
            await connection.run_sync(STATE.metadata.create_all)
            state = await self._state(connection)
            if state is not None:
                if state["swapped_at"] is not None:
                    raise ReplayRefused(
                        f"{_redacted(self.into_url)} was swapped in at {state['swapped_at']}: "
                        "it is a live database now"
                    )
                if group and group != state["group_id"]:
                    raise ReplayRefused(f"this replay runs under group {state['group_id']}")
                self._say(f"resuming the replay under group {state['group_id']}")
                return state
            if await _rows(connection, [*self.plan.rebuilds, *self.plan.keeps]):
                raise ReplayRefused(
                    f"{_redacted(self.into_url)} holds {self.plan.service} data and no replay "
                    "was started in it: give a fresh database"
                )
            copied = await copy_tables(live, connection, self.plan.keeps)
            row = {
                "service": self.plan.service,
                "group_id": group or f"{self.live_group}-replay-{_stamp()}",
                "live_group": self.live_group,
                "started_at": datetime.now(UTC),
                "guard_digest": await digest(live, self.plan.guards),
                "swapped_at": None,
            }
            await connection.execute(insert(STATE).values(row))
        self._say(
            f"new {self.plan.service} database {_redacted(self.into_url)}: {copied:,} rows of "
            f"{', '.join(self.plan.keeps) or 'nothing'} copied; rebuilding "
            f"{', '.join(self.plan.rebuilds)} under group {row['group_id']}"
        )
        return row

    async def _state(self, connection: AsyncConnection) -> Mapping[str, Any] | None:
        row = (
            await connection.execute(select(STATE).where(STATE.c.service == self.plan.service))
        ).first()
        return dict(row._mapping) if row else None

    async def swap(self) -> Replayer:
        """With the service stopped: finish the replay at the live group's final offsets and
        make the new database complete, ready to be pointed at."""
        live, into = create_engine(self.live_url), _replay_engine(self.into_url)
        try:
            await check_plan(self.plan, live)
            async with into.connect() as connection:
                tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                state = await self._state(connection) if STATE.name in tables else None
            if state is None:
                raise ReplayRefused(
                    f"no replay was built in {_redacted(self.into_url)}: build first"
                )
            if state["swapped_at"] is not None:
                raise ReplayRefused(f"already swapped at {state['swapped_at']}")
            if await digest(live, self.plan.guards) != state["guard_digest"]:
                raise ReplayRefused(
                    f"{', '.join(self.plan.guards)} changed since the build began; the rebuilt "
                    "projection was computed from the old rows: build again into a fresh database"
                )
            replayer = self._replayer(into, state["group_id"])
            offsets = await replayer.run(follow=False)
            after = await live_committed(self.settings, self.live_group, list(offsets.target))
            if after != offsets.target or offsets.behind():
                raise ReplayRefused(
                    f"group {self.live_group} moved during the swap: stop {self.plan.service} "
                    "(every replica), then swap again"
                )
            await self._finish(live, into)
            self._say(
                f"{self.plan.service}: {_redacted(self.into_url)} is complete at the offsets "
                f"where {self.live_group} stopped. Start {self.plan.service} on it with its "
                f"database URL set to that database and KAFKA_CONSUMER_GROUP={state['group_id']}; "
                f"keep {_redacted(self.live_url)} to go back to."
            )
            return replayer
        finally:
            await live.dispose()
            await into.dispose()

    async def _finish(self, live: AsyncEngine, into: AsyncEngine) -> None:
        """One transaction: drop the replay's outbox, copy the kept tables, reconcile."""
        async with into.begin() as connection:
            # The events the handlers wrote while replaying were published long ago by
            # the live service; the live outbox (copied below) holds what is still unsent.
            await connection.execute(text("DELETE FROM outbox"))
            copied = set(self.plan.keeps) - set(self.plan.guards)
            await copy_tables(live, connection, [*sorted(copied), "outbox"])
            if self.plan.reconcile is not None:
                await self.plan.reconcile(connection)
            await connection.execute(
                update(STATE)
                .where(STATE.c.service == self.plan.service)
                .values(swapped_at=datetime.now(UTC))
            )


def _replay_engine(url: str) -> AsyncEngine:
    """The new database's engine: on SQLite, a page cache that holds the indexes being
    built (the default 2 MB makes every insert into a large B-tree read pages back)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _cache(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA cache_size=-{REPLAY_SQLITE_CACHE_KB}")
            cursor.close()

    return engine


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _same_database(one: str, other: str) -> bool:
    first, second = make_url(one), make_url(other)
    if first.get_backend_name() == "sqlite" and second.get_backend_name() == "sqlite":
        return Path(first.database or "").resolve() == Path(second.database or "").resolve()
    return first.set(drivername="x") == second.set(drivername="x")


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def default_target(live_url: str, service: str) -> str:
    """A new SQLite file next to the live one; PostgreSQL needs `--into` (a database to create)."""
    url = make_url(live_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ReplayRefused(
            f"give the database to build into with --into (for example "
            f"{url.set(database=f'{url.database}_replay').render_as_string(hide_password=True)}, "
            "created empty with createdb)"
        )
    path = Path(url.database)
    return url.set(
        database=str(path.with_name(f"{path.stem}.replay-{_stamp()}.db"))
    ).render_as_string(hide_password=False)


# --- the command ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """What the command needs from a service's settings."""

    database_url: str
    kafka: KafkaSettings
    dependencies: Mapping[str, Any]


class ServiceSettings(Protocol):
    """The part of a service's settings the command reads."""

    database_url: str
    kafka: KafkaSettings


def command(
    plan: ReplayPlan,
    get_settings: Callable[[], ServiceSettings],
    *,
    needs_settings: bool = True,
) -> Callable[..., int]:
    """A service's `run(argv=None)`: `main` on its settings from the environment; its
    handlers get the settings as their `settings` dependency when they need them."""

    def load() -> ServiceConfig:
        settings = get_settings()
        dependencies = {"settings": settings} if needs_settings else {}
        return ServiceConfig(settings.database_url, settings.kafka, dependencies)

    def run(argv: Sequence[str] | None = None) -> int:
        return main(plan, load, argv)

    return run


def main(
    plan: ReplayPlan, load: Callable[[], ServiceConfig], argv: Sequence[str] | None = None
) -> int:
    """`python -m rapport_<service>.replay build|swap [--into URL]`; exit 2 when refused."""
    parser = argparse.ArgumentParser(
        prog=f"python -m rapport_{plan.service.replace('-', '_')}.replay",
        description=f"Rebuild {plan.service}'s projection from the log into a new database.",
    )
    steps = parser.add_subparsers(dest="step", required=True)
    build = steps.add_parser("build", help="build (or resume) while the service runs")
    build.add_argument("--into", help="the new database (default: a new SQLite file)")
    build.add_argument("--group", help="the new consumer group (default: <group>-replay-<time>)")
    swap = steps.add_parser("swap", help="finish, with the service stopped")
    swap.add_argument("--into", required=True, help="the database the build used")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if plan.refusal:
            raise ReplayRefused(f"{plan.service} cannot be replayed: {plan.refusal}")
        config = load()
        into = args.into or default_target(config.database_url, plan.service)
        replay = Replay(plan, config.database_url, into, config.kafka, config.dependencies)
        if args.step == "build":
            asyncio.run(replay.build(args.group))
            print(f"next: stop {plan.service}, then: swap --into {into}", file=sys.stderr)
        else:
            asyncio.run(replay.swap())
    except (ReplayRefused, ValueError) as refused:  # ValueError: settings that do not validate
        print(f"replay refused: {refused}", file=sys.stderr)
        return 2
    return 0
