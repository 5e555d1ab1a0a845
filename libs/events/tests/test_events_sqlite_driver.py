"""SQLite statements make one trip to aiosqlite's thread, and behave as SQLAlchemy's adapter."""

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.db import create_engine
from rapport_events.sqlite_driver import DRIVER

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every function aiosqlite ran on its thread."""
    seen: list[object] = []
    original = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


class TestOneTripPerStatement:
    async def test_sqlite_urls_use_the_one_trip_driver(self, engine: AsyncEngine) -> None:
        assert engine.url.drivername == f"sqlite+{DRIVER}"

    async def test_a_query_and_a_write_are_one_trip_each(
        self, engine: AsyncEngine, trips: list[object]
    ) -> None:
        async with engine.begin() as connection:
            trips.clear()
            await connection.execute(text("INSERT INTO note (body) VALUES ('a')"))
            assert len(trips) == 1
            rows = (await connection.execute(text("SELECT body FROM note"))).all()
            assert len(trips) == 2
        assert rows == [("a",)]


class TestSameResultsAsTheAdapter:
    async def test_ids_row_counts_and_many_rows(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            inserted = await connection.execute(
                text("INSERT INTO note (body) VALUES (:body)"), [{"body": "x"}, {"body": "y"}]
            )
            assert inserted.rowcount == 2
            one = await connection.execute(text("INSERT INTO note (body) VALUES ('z')"))
            assert one.lastrowid == 3
            updated = await connection.execute(text("UPDATE note SET body = 'w' WHERE id < 3"))
            assert updated.rowcount == 2
            result = await connection.execute(text("SELECT id, body FROM note ORDER BY id"))
            assert result.keys() == ["id", "body"]
            assert result.all() == [(1, "w"), (2, "w"), (3, "z")]

    async def test_streamed_results_still_work(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO note (body) VALUES (:body)"), [{"body": str(n)} for n in range(5)]
            )
            stream = await connection.stream(text("SELECT body FROM note ORDER BY id"))
            assert [row[0] async for row in stream] == ["0", "1", "2", "3", "4"]

    async def test_errors_are_sqlalchemy_errors(self, engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO note (id, body) VALUES (1, 'a')"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO note (id, body) VALUES (1, 'b')"))
        with pytest.raises(OperationalError):
            async with engine.begin() as connection:
                await connection.execute(text("SELECT nothing FROM nowhere"))
