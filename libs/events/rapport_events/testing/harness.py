"""An upstream outbox and a downstream inbox wired to a real broker, for integration tests.

`Harness` gives a producing database (outbox), a consuming database (inbox plus
a small test projection) and the library's relay, runner and runtime on one
topic; the log is read back with plain aiokafka clients. Fixtures that build it
live in the tests' conftest.
"""

import asyncio
import contextlib
import inspect
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.codec import Envelope
from rapport_events.consumer import ConsumerRunner, HandlerMap
from rapport_events.db import SessionFactory, async_url, create_engine, session_factory, transaction
from rapport_events.inbox import InboxEntry
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.outbox import OutboxMessage
from rapport_events.relay import OutboxRelay
from rapport_events.runtime import EventRuntime
from rapport_events.settings import KafkaSettings
from rapport_events.types import InteractionTracked

T = TypeVar("T")
log = logging.getLogger(__name__)

UPSTREAM = "upstream"  # the producing service
DOWNSTREAM = "downstream"  # the consuming service: its consumer group and dead-letter suffix
TEARDOWN_TIMEOUT_S = 15.0


# The library's own tables; SQLModel's metadata may hold a service's too.
LIBRARY_TABLES = [OutboxMessage.__table__, InboxEntry.__table__]  # type: ignore[attr-defined]

# --- the projection the consuming side writes ----------------------------------

# A MetaData of its own, so SQLModel.metadata keeps only the library's tables.
PROJECTION = MetaData()
APPLIED = Table(
    "test_applied_events",
    PROJECTION,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Not unique on purpose: an event applied twice must show up as two rows.
    Column("event_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
)


def tracked(customer_id: str, seq: int) -> InteractionTracked:
    """A small event whose `seq` shows the order it was written in."""
    return InteractionTracked(
        customer_id=customer_id, kind="track", name="step", properties={"seq": seq}
    )


async def record_effect(
    event: InteractionTracked, envelope: Envelope, session: AsyncSession
) -> None:
    """The downstream handler: one projection row per application."""
    await session.exec(
        insert(APPLIED).values(
            event_id=envelope.id, customer_id=event.customer_id, seq=event.properties["seq"]
        )
    )


HANDLERS: HandlerMap = {InteractionTracked: [record_effect]}


async def until(
    check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05
) -> float:
    """Poll `check` (sync or async) until truthy; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return loop.time() - started
        if loop.time() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], Any] = bool,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Call `fetch` until `done` holds for what it gives, for at most `timeout` seconds;
    returns the last result either way, for the test to assert on (with its own message).

    The ceiling costs a passing test nothing (it returns as soon as `done` holds); it is
    long because two test workers, a broker and browsers share two cores in `make test`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await fetch()
        if done(result) or loop.time() > deadline:
            return result
        await asyncio.sleep(interval)


async def until_status(
    fetch: Callable[[], Awaitable[Any]], expected: int = 200, timeout: float = 15.0
) -> Any:
    """Call `fetch` until its reply has the `expected` status; returns the last reply."""
    return await poll_until(fetch, lambda reply: reply.status_code == expected, timeout)


async def until_value(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll the async `check` until it gives something truthy, and return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s")
        await asyncio.sleep(0.1)


async def wait_until_ready(app: Any, timeout: float = 60.0) -> None:
    """Wait until a started app's /readyz would answer 200: broker connected, consumer in
    its group, every task well. Events a test puts on the log are then applied at once,
    not after a group join that takes seconds on a loaded machine."""
    runtime = app.state.runtime

    async def ready() -> bool:
        if not runtime.connected.is_set():
            return False
        try:
            await runtime.check_tasks()
        except RuntimeError:
            return False
        return True

    await until(ready, timeout=timeout, what=f"{runtime.service} to be ready", interval=0.05)


# Generous: on a machine running tests in parallel a relay may wait seconds for a core.
DRAIN_TIMEOUT_S = 30.0


async def drain_outbox(app: Any, timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Wait until the relay of a started app has published every outbox row.

    Tests call it before stopping the app, so a stop never lands in the middle of a send.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay = app.state.runtime.relay
        if relay is not None and (await relay.backlog())[0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the outbox was not drained within {timeout}s")


# Fixtures a test asks for when it waits for the app to apply events from the log.
CONSUMING_FIXTURES = frozenset({"publish", "poll", "eventually", "read_log"})


def consumes_events(request: Any) -> bool:
    """Whether a test needs the app's consumer in its group before it starts: it asks for a
    fixture that puts events on the log or polls for their effects, or is marked `consumes`.
    Only those wait (a group join takes about a second); the others start at once."""
    marked = request.node.get_closest_marker("consumes") is not None
    return marked or bool(CONSUMING_FIXTURES & set(request.fixturenames))


# --- the harness ---------------------------------------------------------------


class Database:
    """One service's database: the library's engine, and a reader for assertions.

    The reader is a plain engine: the library's SQLite engine begins with BEGIN
    IMMEDIATE, which would wait behind a handler's open transaction.
    """

    def __init__(self, url: str, on_outbox_commit: Callable[[], None] | None = None) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url)
        self.sessions: SessionFactory = session_factory(self.engine, on_outbox_commit)
        self.reader: AsyncEngine = create_async_engine(async_url(url))

    async def create_tables(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(
                lambda sync: SQLModel.metadata.create_all(sync, tables=LIBRARY_TABLES)
            )
            await connection.run_sync(PROJECTION.create_all)

    async def scalar(self, statement: Any) -> Any:
        async with self.reader.connect() as connection:
            return (await connection.execute(statement)).scalar_one()

    async def rows(self, statement: Any) -> list[Any]:
        async with self.reader.connect() as connection:
            return list((await connection.execute(statement)).all())

    @contextlib.asynccontextmanager
    async def unavailable(self) -> AsyncIterator[None]:
        """An outage: PostgreSQL refuses connections and drops open ones; SQLite stays locked."""
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite":
            # Another writer holds the lock: the library's engine waits on busy_timeout.
            locker = sqlite3.connect(
                url.database or "", isolation_level=None, check_same_thread=False
            )
            await asyncio.to_thread(locker.execute, "BEGIN IMMEDIATE")
            try:
                yield
            finally:
                await asyncio.to_thread(locker.execute, "ROLLBACK")
                locker.close()
            return
        name = url.database
        admin_url = url.set(drivername="postgresql", database="postgres")
        admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()

    async def dispose(self) -> None:
        await self.reader.dispose()
        await self.engine.dispose()


class Harness:
    """A producing and a consuming database on one topic of the real broker.

    Everything it starts, it stops at teardown, each within a bounded wait.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        upstream_url: str,
        downstream_url: str,
        group: str = DOWNSTREAM,
    ) -> None:
        self.settings = settings
        self.group = group
        # As a service's runtime does: data key records go to this harness's key topic,
        # which a consumer in another process reads.
        outbox.configure(settings)
        self.upstream = Database(upstream_url, on_outbox_commit=self._wake_relays)
        self.downstream = Database(downstream_url)
        self._relays: list[OutboxRelay] = []
        self._runners: list[ConsumerRunner] = []
        self._runtimes: list[EventRuntime] = []
        self._producers: list[AIOKafkaProducer] = []
        self._offset_reader: AIOKafkaConsumer | None = None

    @property
    def topic(self) -> str:
        return self.settings.topic

    @property
    def dead_letter_topic(self) -> str:
        return self.settings.dead_letter_topic(self.group)

    @property
    def partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]

    async def setup(self) -> "Harness":
        await self.upstream.create_tables()
        await self.downstream.create_tables()
        await ensure_topics(self.settings, [self.topic, self.dead_letter_topic])
        return self

    def _wake_relays(self) -> None:
        for relay in self._relays:
            relay.wake()
        for runtime in self._runtimes:
            if runtime.relay is not None:
                runtime.relay.wake()

    # --- producing side

    async def write(self, events: Iterable[InteractionTracked]) -> list[Envelope]:
        """Add events to the upstream outbox in one transaction."""
        async with transaction(self.upstream.sessions) as session:
            return [
                outbox.add(session, event, source=f"/services/{UPSTREAM}", topic=self.topic)
                for event in events
            ]

    async def producer(self, client_id: str = UPSTREAM) -> AIOKafkaProducer:
        """A started producer from the library's factory."""
        producer = create_producer(self.settings, client_id=client_id)
        self._producers.append(producer)
        await producer.start()
        return producer

    async def relay(
        self, relay_class: type[OutboxRelay] = OutboxRelay, *, start: bool = True, **kwargs: Any
    ) -> OutboxRelay:
        """A relay over the upstream outbox with a producer of its own."""
        relay = relay_class(self.upstream.sessions, await self.producer(), self.settings, **kwargs)
        self._relays.append(relay)
        if start:
            relay.start()
        return relay

    async def backlog(self) -> int:
        return int(
            await self.upstream.scalar(
                select(func.count()).select_from(OutboxMessage).where(outbox.is_pending())
            )
        )

    async def backlog_is_empty(self) -> bool:
        return await self.backlog() == 0

    # --- consuming side

    async def runner(
        self,
        runner_class: type[ConsumerRunner] = ConsumerRunner,
        *,
        handlers: HandlerMap = HANDLERS,
        **kwargs: Any,
    ) -> ConsumerRunner:
        """A started consumer runner of the downstream group on the downstream database."""
        runner = runner_class(
            service=self.group,
            settings=self.settings,
            session_factory=self.downstream.sessions,
            handlers=handlers,
            producer=await self.producer(DOWNSTREAM),
            **kwargs,
        )
        self._runners.append(runner)
        await runner.start()
        return runner

    async def runtime(
        self, database: Database, service: str, handlers: HandlerMap | None
    ) -> EventRuntime:
        """A service's whole event plumbing, connected."""
        runtime = EventRuntime(
            service=service, engine=database.engine, settings=self.settings, handlers=handlers
        )
        self._runtimes.append(runtime)
        await runtime.start()
        await asyncio.wait_for(runtime.connected.wait(), 20)
        return runtime

    async def effects(self) -> list[Any]:
        """Projection rows (event_id, customer_id, seq) in the order they were applied."""
        return await self.downstream.rows(
            select(APPLIED.c.event_id, APPLIED.c.customer_id, APPLIED.c.seq).order_by(APPLIED.c.id)
        )

    async def effect_count(self) -> int:
        return int(await self.downstream.scalar(select(func.count()).select_from(APPLIED)))

    async def has_effects(self, count: int) -> bool:
        """True once the projection holds at least `count` rows."""
        return await self.effect_count() >= count

    async def inbox_ids(self) -> list[str]:
        rows = await self.downstream.rows(
            select(col(InboxEntry.event_id)).where(col(InboxEntry.consumer) == self.group)
        )
        return [row[0] for row in rows]

    # --- the log, read by plain aiokafka clients (no rapport code)

    async def read_topic(
        self, topic: str, count: int, *, timeout: float = 20.0, settle: float = 0.5
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record of `topic` from the beginning; waits for `count`, then `settle` more."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(self.settings.partitions)])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(records) < count and loop.time() < deadline:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
            quiet_until = loop.time() + settle
            while loop.time() < quiet_until:
                for batch in (await consumer.getmany(timeout_ms=100)).values():
                    records.extend(batch)
        finally:
            await consumer.stop()
        return sorted(records, key=lambda r: (r.partition, r.offset))

    async def committed(self) -> dict[int, int | None]:
        """The downstream group's committed offset per partition (None: nothing committed)."""
        if self._offset_reader is None:
            # Never subscribed, so it never joins the group; it only fetches offsets.
            self._offset_reader = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                group_id=self.group,
                enable_auto_commit=False,
            )
            await self._offset_reader.start()
        return {tp.partition: await self._offset_reader.committed(tp) for tp in self.partitions}

    async def _close_offset_reader(self) -> None:
        if self._offset_reader is not None:
            await self._offset_reader.stop()
            self._offset_reader = None

    async def close(self) -> None:
        closers: list[Callable[[], Awaitable[None]]] = [
            *(runner.stop for runner in reversed(self._runners)),
            *(relay.stop for relay in reversed(self._relays)),
            *(runtime.stop for runtime in reversed(self._runtimes)),
            *(producer.stop for producer in reversed(self._producers)),
            self._close_offset_reader,
            self.upstream.dispose,
            self.downstream.dispose,
        ]
        for close in closers:
            try:
                await asyncio.wait_for(close(), TEARDOWN_TIMEOUT_S)
            except Exception as error:  # one stuck client must not leak the rest
                log.warning("teardown step %r failed: %r", close, error)


# What the tests' `make_harness` fixture hands out: settings in, a ready harness out.
HarnessFactory = Callable[..., Awaitable[Harness]]  # (settings, group=DOWNSTREAM)
