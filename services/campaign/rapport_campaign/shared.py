"""What campaign's domains share: UTC timestamps and ids, column types, the outbox, and the
bulk helpers every store writes and reads with."""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Numeric, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.base import Executable
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.settings import Settings
from rapport_events import outbox
from rapport_events.base import Event

TZ = DateTime(timezone=True)
MONEY = Numeric(14, 2)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def aware_or_none(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


SOURCE = "/services/campaign"
CHANNELS = ("email", "sms", "push", "social")


def utc(value: datetime) -> datetime:
    """Every stored timestamp is UTC (SQLite keeps no zone, so mixing zones would misorder)."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def publish(session: AsyncSession, event: Event, settings: Settings) -> None:
    # The configured log, not outbox.add's default: the relay sends to the row's topic.
    outbox.add(session, event, source=SOURCE, topic=settings.kafka.topic)


BULK = 1000
# Rows per multi-row statement: ~500, fewer for wide rows, under both databases' limits on
# bound parameters (SQLite 32,766; PostgreSQL's protocol 32,767).
ROWS_PER_STATEMENT = 500
MAX_PARAMETERS = 30_000


async def all_rows(session: AsyncSession, statement: Executable) -> list[Any]:
    """Rows of a statement wider than sqlmodel's typed `select` overloads (five columns)."""
    result = await session.exec(statement)  # type: ignore[call-overload]
    return list(result.all())


def add(session: AsyncSession, row: SQLModel) -> None:
    session.add(row)


async def delete_row(session: AsyncSession, row: SQLModel) -> None:
    await session.delete(row)


# A customer's rows of one table, each helper one statement: what a merge moves, an erasure
# deletes and the export reads.


async def rows_of(session: AsyncSession, model: type[SQLModel], customer_id: str) -> list[Any]:
    """The rows of `model` about the customer."""
    column = model.__table__.c.customer_id  # type: ignore[attr-defined]
    result = await session.exec(select(model).where(column == customer_id))  # type: ignore[call-overload]
    return list(result.all())


async def delete_rows(session: AsyncSession, model: type[SQLModel], customer_id: str) -> None:
    """Delete the rows of `model` about the customer."""
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(delete(table).where(table.c.customer_id == customer_id))


async def update_rows(
    session: AsyncSession, model: type[SQLModel], of: str, values: Mapping[str, Any]
) -> None:
    """Set `values` on every row of the customer `of`."""
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(update(table).where(table.c.customer_id == of).values(**values))


def chunks(items: Sequence[Any], size: int = BULK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rows_per_statement(columns: int) -> int:
    return max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // max(columns, 1)))


async def upsert(
    session: AsyncSession,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert rows, or update the `update` columns (all others by default) of existing ones.

    One statement with every row as its parameters, ~500 rows at a time: the statement
    compiles once and is cached, and the driver sends the rows together (SQLAlchemy's
    "insertmanyvalues" where it applies), where `values([...])` would compile anew for each
    batch size. Every row has the same columns.
    """
    if not rows:
        return
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = list(rows[0])
    updated = [c for c in (update if update is not None else columns) if c not in keys]
    statement = make(table)
    if updated:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={c: statement.excluded[c] for c in updated}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    for chunk in chunks(rows, rows_per_statement(len(columns))):
        await session.exec(statement, params=list(chunk))  # type: ignore[call-overload]


def as_time(value: Any) -> datetime | None:
    # Aggregates over SQLite come back as text.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
