"""Set-based reads and writes for runs of events: `IN` lookups, upserts, deletes by key.

SQLite binds at most 32,766 parameters a statement and PostgreSQL 65,535, so keys and
rows go in chunks well under both. An upsert is one compiled statement executed over
each chunk's rows: PostgreSQL gets multi-row VALUES ("insertmanyvalues"), SQLite runs
the prepared statement over the rows in the driver; neither compiles per run size.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

CHUNK = 500
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel model."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """`items` in slices of at most `size`."""
    return (items[start : start + size] for start in range(0, len(items), size))


async def execute(
    session: AsyncSession, statement: Any, rows: Sequence[dict[str, Any]] | None = None
) -> Any:
    """A Core statement on the session's transaction (its pending ORM changes flush first)."""
    return await session.exec(statement, params=rows)


def _columns(table: Table, columns: str | Sequence[str]) -> list[Any]:
    return [table.c[columns]] if isinstance(columns, str) else [table.c[n] for n in columns]


def _key(table: Table, columns: str | Sequence[str]) -> Any:
    found = _columns(table, columns)
    return found[0] if len(found) == 1 else tuple_(*found)


async def rows_where(
    session: AsyncSession,
    model: type[SQLModel],
    columns: str | Sequence[str],
    keys: Iterable[Any],
    *conditions: Any,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """The rows of `model` whose `columns` (one, or a tuple) are among `keys`, as dicts.

    `lock` reads them FOR UPDATE (in key order, so two lockers cannot deadlock): a writer
    that will put them back whole keeps others from changing them in between. SQLite
    needs no lock: its transactions here take the write lock when they begin.
    """
    table = table_of(model)
    found: list[dict[str, Any]] = []
    for part in chunks(sorted(set(keys))):
        query = table.select().where(_key(table, columns).in_(part), *conditions)
        if lock:
            query = query.order_by(*_columns(table, columns)).with_for_update()
        found.extend(dict(row) for row in (await execute(session, query)).mappings())
    return found


async def delete_where(
    session: AsyncSession,
    model: type[SQLModel],
    columns: str | Sequence[str],
    keys: Iterable[Any],
) -> None:
    """Delete the rows of `model` whose `columns` (one, or a tuple) are among `keys`."""
    table = table_of(model)
    for part in chunks(sorted(set(keys))):
        await execute(session, table.delete().where(_key(table, columns).in_(part)))


async def upsert(
    session: AsyncSession,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    update: Sequence[str] = (),
) -> None:
    """Insert `rows`, one statement per chunk; on a clash of `keys` set `update` (or leave
    the stored row as it is when `update` is empty)."""
    if not rows:
        return
    insert = _INSERTS[session.get_bind().dialect.name]
    statement: Any = insert(table_of(model))
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: statement.excluded[name] for name in update}
        )
    elif keys:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    for part in chunks(rows):
        await execute(session, statement, part)
