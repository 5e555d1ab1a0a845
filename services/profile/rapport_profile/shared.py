"""What profile's domains share: UTC timestamps and row ids, multi-row SQL helpers, and
writing events to the outbox."""

import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
)
from sqlalchemy import DateTime, Numeric
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import Event
from rapport_events.codec import Envelope

TZ = DateTime(timezone=True)


MONEY = Numeric(14, 2)


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Utc = Annotated[datetime, AfterValidator(aware)]


def utc(value: datetime) -> datetime:
    """Stored in UTC: SQLite keeps no offset, so a +02:00 time must be converted first."""
    return aware(value).astimezone(UTC)


# By dialect name: the INSERT that takes ON CONFLICT clauses.
INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


# Values bound in one IN list: far below SQLite's and asyncpg's limits on parameters.
IN_LIST = 500


# Rows in one multi-row INSERT: 500 rows of the widest table (12 columns) bind 6,000
# values, under SQLite's 32,766 and asyncpg's 32,767.
ROWS_PER_INSERT = 500


def _chunks(values: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), IN_LIST):
        yield ordered[start : start + IN_LIST]


async def _present(session: AsyncSession, column: Any, values: Collection[str]) -> set[str]:
    """Which of `values` the column holds, asked in IN lists of at most IN_LIST."""
    present: set[str] = set()
    for chunk in _chunks(values):
        result = await session.exec(select(column).where(column.in_(chunk)))
        present.update(result.all())
    return present


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT on `table` in the session's dialect, so it can skip or update conflicts."""
    return INSERTS[session.get_bind().dialect.name](table)


def _row_chunks(rows: Sequence[Mapping[str, Any]]) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(rows), ROWS_PER_INSERT):
        yield rows[start : start + ROWS_PER_INSERT]


async def _send_rows(
    session: AsyncSession, statement: Any, rows: Sequence[Mapping[str, Any]]
) -> list[Any]:
    """Execute an INSERT … RETURNING for `rows`, at most ROWS_PER_INSERT to a statement.

    Given a list of rows, SQLAlchemy sends an INSERT with RETURNING as multi-row VALUES
    built from one cached compilation (its "insertmanyvalues"); `.values([...])` would
    compile every batch anew, which costs more than the database's work.
    """
    returned: list[Any] = []
    for chunk in _row_chunks(rows):
        result = await session.exec(statement, params=list(chunk))
        returned.extend(result.all())
    return returned


async def _insert_new(session: AsyncSession, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the rows whose key is not taken yet."""
    statement = _insert(session, table).on_conflict_do_nothing()
    await _send_rows(session, statement.returning(*table.primary_key.columns), rows)


async def _upsert(
    session: AsyncSession, table: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> None:
    """Insert whole rows; where the key is taken, set only `columns` from them (a key once)."""
    statement = _insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: statement.excluded[name] for name in columns},
    )
    await _send_rows(session, statement.returning(*table.primary_key.columns), rows)


SOURCE = "/services/profile"


def publish(session: AsyncSession, event: Event, topic: str) -> Envelope:
    # The configured log, not outbox.add's default: the relay sends to the row's topic.
    return outbox.add(session, event, source=SOURCE, topic=topic)


def new_message_id() -> str:
    return f"rapport-{uuid.uuid4()}"
