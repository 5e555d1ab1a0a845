"""Database engines and sessions: SQLite file by default, PostgreSQL by URL."""

import asyncio
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import shredding, sqlite_driver

SessionFactory = async_sessionmaker[AsyncSession]
# A transaction that only reads: on SQLite it starts deferred, so it never queues for
# the single writer's lock (WAL readers see the last commit and do not block writers).
READ_ONLY = "rapport_read_only"
# How long a SQLite writer waits for the lock, in this process's queue and then in
# SQLite's busy handler (which waits for other processes), before "database is locked".
SQLITE_LOCK_TIMEOUT_S = 30.0
_WRITER_TOKEN = "rapport_writer"
# HTTP methods that only read (RFC 9110 "safe"): their requests run in read transactions.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Set on a session whose transaction erased someone: once it commits, SQLite's write-ahead
# log is checkpointed and emptied, so no copy of the deleted rows stays in the -wal file.
_CHECKPOINT_AFTER_COMMIT = "rapport_checkpoint_after_commit"
# How long the checkpoint after an erasure's commit waits for readers. A busy service always
# has some reader, and SQLite's busy handler would hold the erasure (its HTTP reply, or the
# consumer's next batch) for the whole lock timeout; a checkpoint that finds readers is
# left to the runtime's checkpoint worker instead, which tries again every second.
CHECKPOINT_BUSY_TIMEOUT_S = 0.2
# The SQLite engines whose write-ahead log may still hold an erasure's rows.
_CHECKPOINTS_WANTED: "weakref.WeakSet[Any]" = weakref.WeakSet()

log = logging.getLogger(__name__)
# Connections an engine keeps open, and how many more it may open for a burst. Concurrent
# requests each hold one: a pool smaller than a busy moment's requests opens and closes a
# connection per request past it (on SQLite a thread and four PRAGMAs, on PostgreSQL a
# login), which cost more than the request's own queries.
POOL_SIZE = 20
MAX_OVERFLOW = 10


def async_url(url: str) -> str:
    """Map plain `sqlite://` and `postgresql://` URLs onto their async drivers.

    SQLite goes through aiosqlite with one thread trip per statement (`sqlite_driver`).
    """
    parsed = make_url(url)
    drivers = {
        "sqlite": f"sqlite+{sqlite_driver.DRIVER}",
        "sqlite+aiosqlite": f"sqlite+{sqlite_driver.DRIVER}",
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
    }
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


class WriterQueue:
    """The writers of one SQLite engine, given the write lock one at a time in arrival order.

    SQLite's busy handler is not fair: a waiting writer sleeps and retries, so a loop
    that commits and begins again at once keeps the lock while requests that want to
    write sleep for seconds. Here a writer first waits its turn on an asyncio.Lock, whose
    waiters are served first come, first served; SQLite's busy handler only arbitrates
    between processes. The turn belongs to a pooled connection: it is taken when a
    write transaction begins and given back when the connection returns to the pool
    (a session returns it as its transaction ends), or is invalidated.
    """

    def __init__(self, timeout_s: float = SQLITE_LOCK_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.waiting = 0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holder: object | None = None
        self._owner: asyncio.Task[Any] | None = None

    @property
    def held(self) -> bool:
        return self._holder is not None

    def wait_for_turn(self, info: dict[Any, Any]) -> None:
        """Block until the connection owning `info` may write; runs in SQLAlchemy's greenlet."""
        token = info.setdefault(_WRITER_TOKEN, object())
        if self._holder is token:
            return  # a connection kept out of the pool keeps its turn between transactions
        task = asyncio.current_task()
        if self._holder is not None and task is not None and self._owner is task:
            # The turn is this task's own, on another connection: waiting would never end.
            raise _database_locked("this task already holds the write lock on another connection")
        await_only(self._acquire())
        self._holder, self._owner = token, task

    async def _acquire(self) -> None:
        lock = self._lock_of_running_loop()
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await lock.acquire()
        except TimeoutError:
            raise _database_locked(f"no turn to write within {self.timeout_s:g} s") from None
        finally:
            self.waiting -= 1

    def _lock_of_running_loop(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; tests may run an engine on several.
        loop = asyncio.get_running_loop()
        if self._lock is None or (self._loop is not loop and self._holder is None):
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    def give_back(self, info: dict[Any, Any]) -> None:
        """End the turn of the connection owning `info`, if it has one."""
        if self._holder is None or self._holder is not info.get(_WRITER_TOKEN):
            return
        self._holder = self._owner = None
        assert self._lock is not None and self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._lock.release()
        elif not self._loop.is_closed():
            # Garbage collection may return a connection from another thread.
            self._loop.call_soon_threadsafe(self._lock.release)


def _database_locked(reason: str) -> exc.OperationalError:
    """The error SQLite gives a writer that waited too long, so callers handle one kind."""
    return exc.OperationalError(
        "BEGIN IMMEDIATE", None, sqlite3.OperationalError(f"database is locked ({reason})")
    )


# By dialect: an engine's copies with other execution options share it, and its pool changes
# on dispose().
_WRITER_QUEUES: "weakref.WeakKeyDictionary[Dialect, WriterQueue]" = weakref.WeakKeyDictionary()


def writer_queue(engine: AsyncEngine) -> WriterQueue | None:
    """The queue of `engine`'s writers; None when the database serves writers itself."""
    return _WRITER_QUEUES.get(engine.sync_engine.dialect)


def _prepare_sqlite(engine: AsyncEngine, lock_timeout_s: float) -> None:
    # SQLite has one writer: WAL lets readers proceed, BEGIN IMMEDIATE takes the
    # write lock up front so a transaction never fails upgrading a read lock.
    # Transactions declared read-only begin deferred and never wait for that lock.
    writers = _WRITER_QUEUES[engine.sync_engine.dialect] = WriterQueue(lock_timeout_s)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten rows are zeroed in the file instead of left in free space,
        # so an erased person's bytes do not outlive the DELETE in the database file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
            return
        writers.wait_for_turn(connection.info)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writers.give_back(connection.info)
            raise

    def _give_back(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        writers.give_back(record.info)

    # Every way a connection stops being used ends its turn: the transaction is over.
    for name in ("checkin", "invalidate", "detach"):
        event.listen(engine.sync_engine, name, _give_back)


class ReadOnlyViolation(exc.InvalidRequestError):
    """A statement that writes, run in a transaction declared read-only."""


def _refuse_writes_when_read_only(
    connection: Any, _cursor: Any, statement: str, *_args: Any
) -> None:
    # On SQLite a write in a deferred transaction skips the writers' queue and may fail
    # with "database is locked" under load: refuse it on every run and every database,
    # so a route that writes under a read transaction fails its tests, not a busy day.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    if read_only and statement.lstrip()[:7].upper().startswith(_WRITES):
        raise ReadOnlyViolation(f"a write in a read-only transaction: {statement[:80]}")


def create_engine(
    url: str, *, sqlite_lock_timeout_s: float = SQLITE_LOCK_TIMEOUT_S, **kwargs: Any
) -> AsyncEngine:
    """An async engine for `url`; creates the SQLite file's folder when needed.

    On SQLite a writer waits at most `sqlite_lock_timeout_s` for the write lock.
    """
    url = async_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        file_db = bool(parsed.database) and parsed.database != ":memory:"
        if file_db:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("pool_size", POOL_SIZE)
            kwargs.setdefault("max_overflow", MAX_OVERFLOW)
        engine = create_async_engine(url, connect_args={"timeout": sqlite_lock_timeout_s}, **kwargs)
        _prepare_sqlite(engine, sqlite_lock_timeout_s)
    else:
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", MAX_OVERFLOW)
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_writes_when_read_only)
    return engine


def session_factory(
    engine: AsyncEngine, on_outbox_commit: Callable[[], None] | None = None
) -> SessionFactory:
    """Sessions whose objects stay readable after commit.

    `on_outbox_commit` runs after a commit that wrote outbox rows, so the relay
    publishes at once instead of at its next poll.
    """

    class _Session(Session):
        pass

    @event.listens_for(_Session, "after_commit")
    def _keys_after_commit(session: Session) -> None:
        shredding.after_commit(session.info)

    @event.listens_for(_Session, "after_rollback")
    def _keys_after_rollback(session: Session) -> None:
        shredding.after_rollback(session.info)

    if on_outbox_commit is not None:
        callback = on_outbox_commit

        @event.listens_for(_Session, "after_commit")
        def _after_commit(session: Session) -> None:
            if session.info.pop("rapport_outbox_pending", False):
                callback()

        @event.listens_for(_Session, "after_rollback")
        def _after_rollback(session: Session) -> None:
            session.info.pop("rapport_outbox_pending", None)

    return async_sessionmaker(
        engine, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False
    )


def checkpoint_after_commit(session: AsyncSession) -> None:
    """Ask for SQLite's write-ahead log to be emptied into the database file once this
    transaction commits (after an erasure: its deleted rows must leave the -wal file)."""
    session.sync_session.info[_CHECKPOINT_AFTER_COMMIT] = True


async def checkpoint_wal(engine: AsyncEngine, busy_timeout_s: float | None = None) -> bool:
    """Copy SQLite's write-ahead log into the database file and truncate it; True when the
    log is empty now. Waits for readers of older snapshots (the connection's busy timeout,
    or `busy_timeout_s`); a no-op on PostgreSQL, whose dead rows go with VACUUM."""
    if not is_sqlite(engine):
        return True
    async with engine.connect() as connection:
        # On the driver's own connection, outside any transaction: a checkpoint cannot run
        # inside one, and SQLAlchemy would begin one (BEGIN IMMEDIATE here) on first use.
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        kept_ms = None
        if busy_timeout_s is not None:
            kept_ms = await _pragma(driver, "busy_timeout")
            await _pragma(driver, f"busy_timeout={int(busy_timeout_s * 1000)}")
        try:
            cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _frames, _copied = await cursor.fetchone()
            await cursor.close()
        finally:
            if kept_ms is not None:  # the pooled connection's writers wait as before
                await _pragma(driver, f"busy_timeout={kept_ms}")
    if busy:
        log.info("the write-ahead log could not be emptied yet: a reader holds an old snapshot")
    return not busy


async def _pragma(driver: Any, statement: str) -> Any:
    cursor = await driver.execute(f"PRAGMA {statement}")
    row = await cursor.fetchone()
    await cursor.close()
    return row[0] if row else None


def checkpoint_wanted(engine: AsyncEngine) -> bool:
    """Whether an erasure's rows may still be in `engine`'s write-ahead log."""
    return engine.sync_engine in _CHECKPOINTS_WANTED


async def checkpoint_if_wanted(engine: AsyncEngine) -> bool:
    """Empty the write-ahead log when an erasure left rows in it; True when it is done
    (or nothing was wanted). The runtime's checkpoint worker calls it every second."""
    if not checkpoint_wanted(engine):
        return True
    if await checkpoint_wal(engine, CHECKPOINT_BUSY_TIMEOUT_S):
        _CHECKPOINTS_WANTED.discard(engine.sync_engine)
        return True
    return False


async def _checkpoint_if_asked(session: AsyncSession) -> None:
    if session.sync_session.info.pop(_CHECKPOINT_AFTER_COMMIT, False):
        engine = session.bind
        assert isinstance(engine, AsyncEngine)
        if not is_sqlite(engine):
            return
        _CHECKPOINTS_WANTED.add(engine.sync_engine)
        await checkpoint_if_wanted(engine)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error."""
    async with factory() as session:
        async with session.begin():
            yield session
        await _checkpoint_if_asked(session)


@asynccontextmanager
async def transaction_reporting_commit(
    factory: SessionFactory, on_commit: Callable[[], None]
) -> AsyncIterator[AsyncSession]:
    """A unit of work that calls `on_commit` once it committed, even when cancelled then.

    A cancel that lands while the commit is in flight waits for the database's answer
    before it goes on: otherwise work that did commit would go uncounted.
    """
    async with factory() as session:
        await session.begin()
        yield session
        commit = asyncio.ensure_future(session.commit())
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            await commit
            on_commit()
            raise
        on_commit()
        await _checkpoint_if_asked(session)


async def begin_read_only(session: AsyncSession) -> None:
    """Start the session's transaction as read-only, on one snapshot (call before its first query).

    A write in such a transaction can fail on SQLite while another writer holds the
    lock, so only routes and loops that never write may use it. On PostgreSQL it is
    REPEATABLE READ, READ ONLY: every statement reads the snapshot of the first, so an
    answer built from several tables never straddles a commit. In autocommit (or at READ
    COMMITTED) each statement read its own snapshot, and a support context could hold
    the product of an order without the customer registered in the same transaction, or
    an export both a person's row and their erasure tombstone. SQLite's deferred
    transaction already reads one snapshot from its first read on.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if session.sync_session.get_bind().dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    await session.connection(execution_options=options)


@asynccontextmanager
async def read_transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A unit of work that only reads."""
    async with factory() as session, session.begin():
        await begin_read_only(session)
        yield session


def request_transaction(
    factory: SessionFactory, method: str
) -> AbstractAsyncContextManager[AsyncSession]:
    """The transaction of an HTTP request: read-only for GET and HEAD, a write otherwise.

    A GET route that records something (a click, a disclosure) asks for `transaction`.
    """
    return read_transaction(factory) if method.upper() in READ_METHODS else transaction(factory)


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers (without waiting for SQLite's write lock)."""
    async with engine.connect() as connection:
        await connection.execution_options(**{READ_ONLY: True})
        await connection.execute(text("SELECT 1"))
