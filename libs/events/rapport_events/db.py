"""Database engines and sessions: SQLite file by default, PostgreSQL by URL."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]
# A transaction that only reads: on SQLite it starts deferred, so it never queues for
# the single writer's lock (WAL readers see the last commit and do not block writers).
READ_ONLY = "rapport_read_only"


def async_url(url: str) -> str:
    """Map plain `sqlite://` and `postgresql://` URLs onto their async drivers."""
    parsed = make_url(url)
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
    }
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _prepare_sqlite(engine: AsyncEngine) -> None:
    # SQLite has one writer: WAL lets readers proceed, BEGIN IMMEDIATE takes the
    # write lock up front so a transaction never fails upgrading a read lock.
    # Transactions declared read-only begin deferred and never wait for that lock.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; creates the SQLite file's folder when needed."""
    url = async_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _prepare_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def session_factory(
    engine: AsyncEngine, on_outbox_commit: Callable[[], None] | None = None
) -> SessionFactory:
    """Sessions whose objects stay readable after commit.

    `on_outbox_commit` runs after a commit that wrote outbox rows, so the relay
    publishes at once instead of at its next poll.
    """

    class _Session(Session):
        pass

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


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on error."""
    async with factory() as session, session.begin():
        yield session


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


async def begin_read_only(session: AsyncSession) -> None:
    """Start the session's transaction as read-only (call before its first query).

    A write in such a transaction can fail on SQLite while another writer holds the
    lock, so only routes and loops that never write may use it.
    """
    await session.connection(execution_options={READ_ONLY: True})


@asynccontextmanager
async def read_transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A unit of work that only reads."""
    async with factory() as session, session.begin():
        await begin_read_only(session)
        yield session


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
