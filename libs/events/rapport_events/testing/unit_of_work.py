"""In-memory stand-ins of a unit of work (`rapport_events.unit_of_work`) for unit tests: an
outbox that records what a use case published, and rows kept by primary key that a
service's fake stores query with plain Python.

A service's fake unit of work subclasses `FakeUnitOfWork` and gives each of its domains a
`FakeStore` subclass implementing that domain's store Protocol over the shared `rows`.
"""

from collections.abc import Callable, Iterable, Sequence
from itertools import count
from typing import Any, TypeVar

from sqlmodel import SQLModel

from rapport_events.base import Event

E = TypeVar("E", bound=Event)
R = TypeVar("R", bound=SQLModel)


class FakeOutbox:
    """Records the published events, in order, and the keys whose sent events an erasure
    took back (`forgotten`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.forgotten: list[str] = []

    async def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def forget_sent(self, keys: Sequence[str]) -> None:
        self.forgotten.extend(keys)

    def published(self, kind: type[E]) -> list[E]:
        """The published events of that type, in order."""
        return [event for event in self.events if isinstance(event, kind)]

    def types(self) -> list[str]:
        """The event types published, in order (`rapport.opportunity.won.v1`, ...)."""
        return [event.TYPE for event in self.events]


class Rows:
    """Tables of SQLModel rows by primary key, as one session's identity map holds them: a
    row read back is the row stored, so a change made to it is kept without a write. An
    integer key left `None` is numbered, as the database would."""

    def __init__(self) -> None:
        self._tables: dict[type[SQLModel], dict[tuple[Any, ...], SQLModel]] = {}
        self._next_id = count(1)

    def add(self, row: SQLModel) -> None:
        names = _key_names(type(row))
        if len(names) == 1 and getattr(row, names[0]) is None:
            setattr(row, names[0], next(self._next_id))
        self._table(type(row))[tuple(getattr(row, name) for name in names)] = row

    def get(self, model: type[R], *key: Any) -> R | None:
        found = self._table(model).get(key)
        return found if isinstance(found, model) else None

    def delete(self, row: SQLModel) -> None:
        key = tuple(getattr(row, name) for name in _key_names(type(row)))
        self._table(type(row)).pop(key, None)

    def all(self, model: type[R]) -> list[R]:
        """Every row of the table, in the order added."""
        return [row for row in self._table(model).values() if isinstance(row, model)]

    def where(self, model: type[R], test: Callable[[R], bool]) -> list[R]:
        return [row for row in self.all(model) if test(row)]

    def extend(self, rows: Iterable[SQLModel]) -> None:
        for row in rows:
            self.add(row)

    def _table(self, model: type[SQLModel]) -> dict[tuple[Any, ...], SQLModel]:
        return self._tables.setdefault(model, {})


def _key_names(model: type[SQLModel]) -> list[str]:
    return [column.name for column in model.__table__.primary_key.columns]  # type: ignore[attr-defined]


class FakeStore:
    """The base of a domain's in-memory store: the unit of work's rows."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def add(self, row: SQLModel) -> None:
        self.rows.add(row)

    async def delete(self, row: SQLModel) -> None:
        self.rows.delete(row)


class FakeUnitOfWork:
    """The base of a service's fake unit of work: the rows its fake stores share, the
    outbox, and how many times the use case flushed."""

    def __init__(self) -> None:
        self.rows = Rows()
        self.outbox = FakeOutbox()
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
