"""The unit of work: one transaction's stores and its outbox, so that a use case is written
once and runs on SQL in production and on in-memory fakes in unit tests
(`rapport_events.testing.unit_of_work`).

A service's own unit of work is a Protocol naming its domains' stores (each a Protocol with
a SQL class and a fake). Its members are read-only properties, so an implementation may
hold a narrower type (a fake's `outbox` is a `FakeOutbox` a test reads back).

There is no `commit` here: the request's dependency commits the session after the route
(or rolls it back on an error), so a use case only ever flushes.
"""

from collections.abc import Sequence
from typing import Protocol

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import Event
from rapport_events.db import checkpoint_after_commit
from rapport_events.outbox import add_all, delete_sent
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC


class Outbox(Protocol):
    """Where a use case puts the events of its change, in the change's transaction."""

    async def publish(self, events: Sequence[Event]) -> None: ...


class ErasingOutbox(Outbox, Protocol):
    """The outbox of a service whose erasure also takes back the events it already sent."""

    async def forget_sent(self, keys: Sequence[str]) -> None:
        """Delete the sent events keyed by one of `keys` (customer ids) now, not after the
        outbox retention, and leave none of their bytes in the database's files."""


class UnitOfWork(Protocol):
    """One transaction: the stores of a service's domains (in its own Protocol) and the outbox."""

    @property
    def outbox(self) -> Outbox: ...

    async def flush(self) -> None:
        """Send the pending writes, for what reads them back or needs their generated ids."""


class SqlOutbox:
    """The transactional outbox on the transaction's session (`rapport_events.outbox`)."""

    def __init__(
        self, session: AsyncSession, *, source: str, topic: str = CUSTOMER_EVENTS_TOPIC
    ) -> None:
        self.session, self.source, self.topic = session, source, topic

    async def publish(self, events: Sequence[Event]) -> None:
        """Write `events` to the outbox in order, one statement."""
        await add_all(self.session, events, source=self.source, topic=self.topic)

    async def forget_sent(self, keys: Sequence[str]) -> None:
        await delete_sent(self.session, keys)
        # SQLite's write-ahead log still holds the deleted bytes until a checkpoint.
        checkpoint_after_commit(self.session)


class SqlStore:
    """The base of a domain's SQL store: the transaction's session, rows added and removed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: SQLModel) -> None:
        """A new row, or a changed one, to write with the transaction."""
        self.session.add(row)

    async def delete(self, row: SQLModel) -> None:
        await self.session.delete(row)


class SqlUnitOfWork:
    """The base of a service's SQL unit of work: its stores share the request's session."""

    def __init__(self, session: AsyncSession, outbox: Outbox) -> None:
        self.session = session
        self._outbox = outbox

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    async def flush(self) -> None:
        await self.session.flush()
