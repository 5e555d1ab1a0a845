"""Every query on the timeline and the disclosure ledger.

`TimelineStore` is what the timeline reads and the merge ask of it; `SqlTimelineStore`
answers on the transaction's session, and `rapport_profile.testing` has the in-memory fake.
The projection's multi-row inserts (`add_timeline_entries`, `add_disclosures`) stay functions
of its session: no use case asks them of a store."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    or_,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlStore
from rapport_profile.shared import _insert_new
from rapport_profile.timeline.models import Disclosure, TimelineEntry

# The projection writes on the tables, not the entities: no ORM object per event.
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]


DISCLOSURES = Disclosure.__table__  # type: ignore[attr-defined]


class TimelineStore(Protocol):
    async def timeline_page(
        self,
        customer_id: str,
        *,
        types: Sequence[str],
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[TimelineEntry]:
        """Newest first: of these types (any when empty), older than `before` (a time and
        event id), at most `limit`."""
        ...

    async def has_timeline(self, customer_id: str) -> bool: ...

    async def disclosures_of(self, customer_id: str) -> list[Disclosure]:
        """The latest first."""
        ...


class SqlTimelineStore(SqlStore):
    async def timeline_page(
        self,
        customer_id: str,
        *,
        types: Sequence[str],
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[TimelineEntry]:
        query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
        if types:
            query = query.where(col(TimelineEntry.type).in_(types))
        if before is not None:
            at, event_id = before
            query = query.where(
                or_(
                    col(TimelineEntry.occurred_at) < at,
                    and_(col(TimelineEntry.occurred_at) == at, col(TimelineEntry.id) < event_id),
                )
            )
        query = query.order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())
        result = await self.session.exec(query.limit(limit))
        return list(result.all())

    async def has_timeline(self, customer_id: str) -> bool:
        result = await self.session.exec(
            select(TimelineEntry.id).where(TimelineEntry.customer_id == customer_id).limit(1)
        )
        return result.first() is not None

    async def disclosures_of(self, customer_id: str) -> list[Disclosure]:
        result = await self.session.exec(
            select(Disclosure)
            .where(Disclosure.customer_id == customer_id)
            .order_by(col(Disclosure.disclosed_at).desc(), col(Disclosure.id))
        )
        return list(result.all())


async def add_timeline_entries(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the entries whose event is not on the timeline yet."""
    await _insert_new(session, TIMELINE, rows)


async def add_disclosures(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert the disclosures not in the ledger yet."""
    await _insert_new(session, DISCLOSURES, rows)
