"""SQLite through aiosqlite, one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes four trips to aiosqlite's thread for a query
(open a cursor, execute, fetch all, close) and three for a statement without rows;
each trip is a queue put, a thread wake-up and a callback back on the event loop,
which on a busy process costs more than SQLite's own work. This adapter runs the
four steps as one function on that thread. Everything else (server-side cursors,
commit, rollback, errors) is SQLAlchemy's aiosqlite dialect unchanged.

`rapport_events.db.async_url` maps `sqlite://` URLs onto it (`sqlite+rapport_aiosqlite`).
"""

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

DRIVER = "rapport_aiosqlite"

_Outcome = tuple[Any, list[Any], int | None, int]


def _execute(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Any] | None
) -> _Outcome:
    """On aiosqlite's thread: the statement's description, rows, last row id and row count."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, cursor.fetchall(), -1, -1
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


def _execute_many(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Sequence[Any]]
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is one trip to aiosqlite's thread."""

    __slots__ = ()

    def _run(self, function: Any, operation: Any, parameters: Any) -> None:
        connection = self._connection
        try:
            outcome: _Outcome = self.await_(
                connection._execute(function, connection._conn, operation, parameters)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self.description, rows, lastrowid, self.rowcount = outcome
        self.lastrowid = lastrowid  # type: ignore[assignment]  # sqlite3 gives None at first
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(_execute, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(_execute_many, operation, seq_of_parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """aiosqlite's adapted connection, handing out one-trip cursors."""

    __slots__ = ()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            return super().cursor(server_side=True)
        return OneTripCursor(self)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        # The sync fallback (async_fallback=True) keeps SQLAlchemy's own adapter.
        if type(connection) is AsyncAdapt_aiosqlite_connection:
            return OneTripConnection(self, connection._connection)
        return connection


class OneTripDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect with one-trip cursors."""

    # Only the cursor changed: SQL compiles as in the parent, so its cache holds.
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")
