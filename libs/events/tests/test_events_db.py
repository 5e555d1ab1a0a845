"""SQLite transactions: writers take the lock up front and in turn, readers never queue for it."""

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from rapport_events.db import (
    ReadOnlyViolation,
    SessionFactory,
    WriterQueue,
    checkpoint_after_commit,
    checkpoint_if_wanted,
    checkpoint_wal,
    checkpoint_wanted,
    create_engine,
    is_sqlite,
    ping,
    read_transaction,
    request_transaction,
    session_factory,
    transaction,
    writer_queue,
)
from rapport_events.testing.harness import until

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration

CREATE_NOTE = "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"


@pytest.fixture
async def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    async with engine.begin() as connection:
        await connection.execute(text(CREATE_NOTE))
        await connection.execute(text("INSERT INTO note (body) VALUES ('first')"))
    yield session_factory(engine)
    await engine.dispose()


async def _read_body(sessions, use):  # type: ignore[no-untyped-def]
    async with use(sessions) as session:
        return (await session.exec(text("SELECT body FROM note"))).one()[0]


class TestSqliteLocks:
    async def test_a_reader_answers_while_a_writer_holds_the_lock(self, sessions) -> None:  # type: ignore[no-untyped-def]
        async with transaction(sessions) as writer:
            await writer.exec(text("UPDATE note SET body = 'second'"))
            async with asyncio.timeout(2):
                body = await _read_body(sessions, read_transaction)
        assert body == "first"  # the last committed state, not the writer's

    async def test_a_writing_transaction_waits_for_the_lock(self, sessions) -> None:  # type: ignore[no-untyped-def]
        async with transaction(sessions) as writer:
            await writer.exec(text("UPDATE note SET body = 'second'"))
            waiting = asyncio.create_task(_read_body(sessions, transaction))
            await asyncio.sleep(0.5)
            assert not waiting.done()
        async with asyncio.timeout(5):
            assert await waiting == "second"


class TestWritersTakeTurns:
    """Writers of one SQLite engine wait in one queue, in the order they came."""

    async def test_writers_are_served_in_arrival_order_while_a_loop_commits_back_to_back(
        self, sessions: SessionFactory
    ) -> None:
        queue = _queue(sessions)
        stop = asyncio.Event()

        async def consumer_like_loop() -> None:
            while not stop.is_set():
                await _write(sessions, "loop")

        async with transaction(sessions) as holder:
            await holder.exec(text("INSERT INTO note (body) VALUES ('holder')"))
            loop = asyncio.create_task(consumer_like_loop())
            await _until_waiting(queue, 1)
            writers = []
            for number in range(5):
                writers.append(asyncio.create_task(_write(sessions, f"writer-{number}")))
                await _until_waiting(queue, number + 2)
        async with asyncio.timeout(10):
            await asyncio.gather(*writers)
        stop.set()
        async with asyncio.timeout(10):
            await loop

        bodies = await _bodies(sessions)
        served = bodies[bodies.index("holder") + 1 :]
        last_writer = served.index("writer-4")
        # The loop came before the writers, so it writes once; then each writer in turn.
        assert served[: last_writer + 1] == ["loop"] + [f"writer-{n}" for n in range(5)]

    async def test_a_read_only_transaction_does_not_wait_for_the_queue(
        self, sessions: SessionFactory
    ) -> None:
        queue = _queue(sessions)
        async with transaction(sessions) as writer:
            await writer.exec(text("UPDATE note SET body = 'second'"))
            waiting = asyncio.create_task(_write(sessions, "waiting"))
            await _until_waiting(queue, 1)
            async with asyncio.timeout(5):
                here = await _read_body(sessions, read_transaction)
                elsewhere = await asyncio.create_task(_read_body(sessions, read_transaction))
        await waiting
        assert here == elsewhere == "first"

    async def test_a_second_write_in_the_same_task_fails_at_once(
        self, sessions: SessionFactory
    ) -> None:
        async with transaction(sessions) as first:
            await first.exec(text("UPDATE note SET body = 'second'"))
            with pytest.raises(OperationalError, match="database is locked"):
                async with asyncio.timeout(5):
                    await _write(sessions, "nested")
        assert await _bodies(sessions) == ["second"]
        assert not _queue(sessions).held

    async def test_the_turn_is_given_back_after_a_rollback(self, sessions: SessionFactory) -> None:
        async with sessions() as session:
            await session.begin()
            await session.exec(text("UPDATE note SET body = 'second'"))
            await session.rollback()
            assert not _queue(sessions).held
            async with asyncio.timeout(5):
                await asyncio.create_task(_write(sessions, "after"))
        assert await _bodies(sessions) == ["first", "after"]

    async def test_the_turn_is_given_back_after_an_exception_in_the_transaction(
        self, sessions: SessionFactory
    ) -> None:
        with pytest.raises(RuntimeError):
            async with transaction(sessions) as session:
                await session.exec(text("UPDATE note SET body = 'second'"))
                raise RuntimeError("the handler failed")
        assert not _queue(sessions).held
        async with asyncio.timeout(5):
            await asyncio.create_task(_write(sessions, "after"))
        assert await _bodies(sessions) == ["first", "after"]

    async def test_a_connection_kept_open_writes_again_after_its_commit(
        self, sessions: SessionFactory
    ) -> None:
        engine = sessions.kw["bind"]
        async with asyncio.timeout(5), engine.connect() as connection:
            for body in ("one", "two"):
                await connection.execute(text(f"INSERT INTO note (body) VALUES ('{body}')"))
                await connection.commit()
        assert not _queue(sessions).held
        assert await _bodies(sessions) == ["first", "one", "two"]

    async def test_a_writer_that_waits_too_long_gets_database_is_locked(
        self, tmp_path: Path
    ) -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'slow.db'}", sqlite_lock_timeout_s=0.2)
        sessions = session_factory(engine)
        try:
            async with transaction(sessions) as holder:
                await holder.exec(text(CREATE_NOTE))
                with pytest.raises(OperationalError, match="database is locked"):
                    await asyncio.create_task(_write(sessions, "late"))
            await _write(sessions, "in time")
            assert await _bodies(sessions) == ["in time"]
        finally:
            await engine.dispose()


class TestRequestTransactions:
    """An HTTP request's transaction: GET and HEAD read, every other method writes."""

    @pytest.mark.parametrize("method", ["GET", "HEAD", "get"])
    async def test_a_read_request_never_begins_immediate_and_a_writer_passes_it(
        self, sessions: SessionFactory, method: str
    ) -> None:
        begun = _begins(sessions)
        async with request_transaction(sessions, method) as reader:
            await reader.exec(text("SELECT body FROM note"))
            # A slow GET keeps its transaction open: a writer must not wait behind it.
            async with asyncio.timeout(2):
                await asyncio.create_task(_write(sessions, "while reading"))
        assert begun == ["BEGIN", "BEGIN IMMEDIATE"]
        assert not _queue(sessions).held

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_a_request_that_may_write_takes_its_turn(
        self, sessions: SessionFactory, method: str
    ) -> None:
        begun = _begins(sessions)
        async with request_transaction(sessions, method) as writer:
            await writer.exec(text("UPDATE note SET body = 'second'"))
        assert begun == ["BEGIN IMMEDIATE"]
        assert await _bodies(sessions) == ["second"]

    async def test_a_write_in_a_read_transaction_is_refused(self, sessions: SessionFactory) -> None:
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            async with read_transaction(sessions) as reader:
                await reader.exec(text("UPDATE note SET body = 'sneaked'"))
        assert await _bodies(sessions) == ["first"]

    async def test_a_ping_answers_while_a_writer_holds_the_lock(
        self, sessions: SessionFactory
    ) -> None:
        async with transaction(sessions) as writer:
            await writer.exec(text("UPDATE note SET body = 'second'"))
            async with asyncio.timeout(2):
                await asyncio.create_task(ping(sessions.kw["bind"]))


class TestNestedWritesByDatabase:
    async def test_postgresql_commits_both_and_sqlite_refuses_the_second(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(CREATE_NOTE))
            async with transaction(sessions) as outer:
                await outer.exec(text("INSERT INTO note (id, body) VALUES (1, 'outer')"))
                if is_sqlite(engine):
                    with pytest.raises(OperationalError, match="database is locked"):
                        await _write(sessions, "inner", 2)
                else:
                    assert writer_queue(engine) is None
                    await _write(sessions, "inner", 2)
            expected = ["outer"] if is_sqlite(engine) else ["outer", "inner"]
            assert sorted(await _bodies(sessions)) == sorted(expected)
        finally:
            await engine.dispose()


class TestSnapshotReads:
    async def test_a_read_does_not_see_a_commit_made_while_it_reads(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(CREATE_NOTE))
            await _write(sessions, "before", 1)
            async with read_transaction(sessions) as reader:
                first = await _count(reader)
                await _write(sessions, "during", 2)
                second = await _count(reader)
            assert (first, second) == (1, 1)
            assert await _bodies(sessions) == ["before", "during"]
        finally:
            await engine.dispose()

    async def test_a_write_in_a_read_is_refused(self, database_url: str) -> None:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(CREATE_NOTE))
            with pytest.raises(ReadOnlyViolation):
                async with read_transaction(sessions) as reader:
                    await reader.exec(text("INSERT INTO note (id, body) VALUES (3, 'no')"))
            assert await _bodies(sessions) == []
        finally:
            await engine.dispose()


async def _count(session: Any) -> int:
    return int((await session.exec(text("SELECT count(*) FROM note"))).one()[0])


def _queue(sessions: SessionFactory) -> WriterQueue:
    queue = writer_queue(sessions.kw["bind"])
    assert queue is not None
    return queue


async def _until_waiting(queue: WriterQueue, count: int) -> None:
    await until(lambda: queue.waiting == count, timeout=10, what=f"{count} writers waiting")


async def _write(sessions: SessionFactory, body: str, id_: int | None = None) -> None:
    async with transaction(sessions) as session:
        await session.exec(
            text("INSERT INTO note (id, body) VALUES (:id, :body)").bindparams(id=id_, body=body)
        )


async def _bodies(sessions: SessionFactory) -> list[str]:
    async with read_transaction(sessions) as session:
        rows = await session.exec(text("SELECT body FROM note ORDER BY id"))
        return [row[0] for row in rows.all()]


def _begins(sessions: SessionFactory) -> list[str]:
    """The BEGIN statements issued on the engine of `sessions` from now on."""
    begun: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.upper().startswith("BEGIN"):
            begun.append(statement.upper())

    event.listen(sessions.kw["bind"].sync_engine, "before_cursor_execute", record)
    return begun


class TestAnErasureLeavesNoCopyInTheFiles:
    async def test_deleted_rows_are_zeroed_and_the_wal_emptied_after_commit(
        self, sessions: SessionFactory, tmp_path: Path
    ) -> None:
        async with transaction(sessions) as session:
            for n in range(50):
                await session.exec(text(f"INSERT INTO note (body) VALUES ('someone else {n}')"))
            await session.exec(text("INSERT INTO note (body) VALUES ('zenobia@example.com')"))

        async with transaction(sessions) as session:
            await session.exec(text("DELETE FROM note WHERE body = 'zenobia@example.com'"))
            checkpoint_after_commit(session)

        files = [tmp_path / "locks.db", tmp_path / "locks.db-wal"]
        assert files[1].stat().st_size == 0
        assert not any(b"zenobia" in path.read_bytes() for path in files)

    async def test_a_reader_in_the_way_does_not_hold_the_erasure_and_the_log_empties_later(
        self, sessions: SessionFactory, tmp_path: Path
    ) -> None:
        engine = sessions.kw["bind"]
        async with transaction(sessions) as session:
            await session.exec(text("INSERT INTO note (body) VALUES ('zenobia@example.com')"))
        reader = sqlite3.connect(tmp_path / "locks.db", isolation_level=None)
        reader.execute("BEGIN")
        held = reader.execute("SELECT count(*) FROM note WHERE body LIKE 'zenobia%'").fetchone()
        assert held == (1,)  # the reader holds a snapshot from before the erasure

        started = time.monotonic()
        async with transaction(sessions) as session:
            await session.exec(text("DELETE FROM note WHERE body = 'zenobia@example.com'"))
            checkpoint_after_commit(session)
        took = time.monotonic() - started

        wal = tmp_path / "locks.db-wal"
        # Not the lock timeout (30 s): the reader is left to finish, the log is emptied later.
        assert took < 2.0, took
        assert checkpoint_wanted(engine) and wal.stat().st_size > 0
        assert await checkpoint_if_wanted(engine) is False  # still in the way
        reader.execute("COMMIT")
        reader.close()
        assert await checkpoint_if_wanted(engine) is True
        assert not checkpoint_wanted(engine) and wal.stat().st_size == 0
        assert not any(b"zenobia" in path.read_bytes() for path in (tmp_path / "locks.db", wal))

    async def test_no_checkpoint_unless_asked_or_when_rolled_back(
        self, sessions: SessionFactory, tmp_path: Path
    ) -> None:
        wal = tmp_path / "locks.db-wal"
        async with transaction(sessions) as session:
            await session.exec(text("INSERT INTO note (body) VALUES ('kept')"))
        assert wal.stat().st_size > 0
        with pytest.raises(RuntimeError):
            async with transaction(sessions) as session:
                checkpoint_after_commit(session)
                raise RuntimeError("rolled back")
        assert wal.stat().st_size > 0

    async def test_checkpointing_postgresql_is_a_no_op(self) -> None:
        engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
        assert await checkpoint_wal(engine) is True
        await engine.dispose()


class TestReadTransactionsOnPostgresql:
    async def test_a_read_is_one_repeatable_read_transaction_and_a_write_is_one(
        self, database_url: str
    ) -> None:
        if not database_url.startswith("postgres"):
            pytest.skip("SQLite reads keep one snapshot for the whole read transaction")
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        current = text("SELECT txid_current()")
        try:
            async with engine.begin() as connection:
                await connection.execute(text(CREATE_NOTE))
            async with read_transaction(sessions) as reader:
                started = (await reader.exec(text("SELECT now()"))).one()[0]
                await asyncio.sleep(0.01)
                again = (await reader.exec(text("SELECT now()"))).one()[0]
                isolation = (await reader.exec(text("SHOW transaction_isolation"))).one()[0]
                read_only = (await reader.exec(text("SHOW transaction_read_only"))).one()[0]
            # One transaction (now() is its start), on one snapshot, that cannot write.
            assert (again, isolation, read_only) == (started, "repeatable read", "on")
            async with transaction(sessions) as writer:
                first = (await writer.exec(current)).one()[0]
                assert (await writer.exec(current)).one()[0] == first
            async with read_transaction(sessions) as reader:
                with pytest.raises(ReadOnlyViolation):
                    await reader.exec(text("INSERT INTO note (body) VALUES ('no')"))
            assert await _bodies(sessions) == []
        finally:
            await engine.dispose()
