"""SQLite transactions: writers take the lock up front, readers never queue for it."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from rapport_events.db import create_engine, read_transaction, session_factory, transaction


@pytest.fixture
async def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
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
