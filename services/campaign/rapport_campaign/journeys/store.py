"""Every query of journeys: the journeys defined and the timers of customers in them.

`JourneyStore` is what the use cases ask of it; `SqlJourneyStore` answers on the
transaction's session, and `rapport_campaign.testing` has the in-memory fake. The module's
functions are the projection's, which reads a run's timers in bulk (`journeys.timers`), and
the triggers' rules (`on_registered`, `on_cart`, ...) that still take the session. A merge,
an erasure and the export ask the store for a customer's timers."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.shared import BULK, all_rows, chunks, delete_rows
from rapport_events.unit_of_work import SqlStore

JOURNEY_STATES = JourneyState.__table__  # type: ignore[attr-defined]


async def journey_states(
    session: AsyncSession, journey_ids: Iterable[str], customer_ids: Iterable[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The timers of these customers in these journeys by (journey, customer), as dicts."""
    journeys, ids = sorted(set(journey_ids)), sorted(set(customer_ids))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not journeys:
        return found
    j = JOURNEY_STATES.c
    for chunk in chunks(ids):
        result = await all_rows(
            session,
            sa_select(JOURNEY_STATES).where(j.journey_id.in_(journeys), j.customer_id.in_(chunk)),
        )
        found.update({(row.journey_id, row.customer_id): dict(row._mapping) for row in result})
    return found


async def active_journeys(session: AsyncSession, trigger: str) -> list[Campaign]:
    result = await session.exec(
        select(Campaign).where(
            Campaign.kind == "journey", Campaign.trigger == trigger, col(Campaign.active).is_(True)
        )
    )
    return list(result.all())


async def stop_timers(
    session: AsyncSession, journey_ids: Sequence[str], customer_ids: Sequence[str], now: datetime
) -> None:
    """Disarm the pending timers of these customers in these journeys."""
    if not journey_ids:
        return
    j = JOURNEY_STATES.c
    for chunk in chunks(customer_ids):
        await session.exec(
            update(JOURNEY_STATES)
            .where(j.journey_id.in_(journey_ids), j.customer_id.in_(chunk), j.due_at.is_not(None))
            .values(due_at=None, updated_at=now)
        )


class JourneyStore(Protocol):
    def add(self, row: JourneyState) -> None: ...

    async def insert_journey_states(self, rows: list[dict[str, Any]]) -> None:
        """New timers, as dicts of their columns."""
        ...

    async def due_journey_states(self, now: datetime, limit: int) -> list[JourneyState]:
        """Up to `limit` timers due by `now`, the earliest first, locked for this scheduler."""
        ...

    async def claim_journey_state(self, state: JourneyState, due_at: datetime) -> bool:
        """Take a due timer (disarmed, its cycle fired); False when another caller took it."""
        ...

    async def journeys(self) -> list[Campaign]:
        """Every journey, active or paused."""
        ...

    async def get_journey_state(self, journey_id: str, customer_id: str) -> JourneyState | None: ...

    async def journey_states_of(self, customer_id: str) -> list[JourneyState]:
        """The customer's timers, in every journey."""
        ...

    async def forget_journey_states(self, customer_id: str) -> None:
        """Delete the customer's timers, in every journey."""
        ...


class SqlJourneyStore(SqlStore):
    async def insert_journey_states(self, rows: list[dict[str, Any]]) -> None:
        table = JourneyState.__table__  # type: ignore[attr-defined]
        for start in range(0, len(rows), BULK):
            await self.session.exec(insert(table), params=rows[start : start + BULK])

    async def due_journey_states(self, now: datetime, limit: int) -> list[JourneyState]:
        """Due timers, locked for this scheduler: another one skips them (SKIP LOCKED)."""
        result = await self.session.exec(
            select(JourneyState)
            .where(col(JourneyState.due_at).is_not(None), col(JourneyState.due_at) <= now)
            .order_by(
                col(JourneyState.due_at),
                col(JourneyState.journey_id),
                col(JourneyState.customer_id),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(result.all())

    async def claim_journey_state(self, state: JourneyState, due_at: datetime) -> bool:
        """Take a due timer for this caller: it fires once even with two schedulers."""
        result = await self.session.exec(
            update(JourneyState)
            .where(
                col(JourneyState.journey_id) == state.journey_id,
                col(JourneyState.customer_id) == state.customer_id,
                col(JourneyState.due_at) == due_at,
            )
            .values(due_at=None, fired_cycle=state.cycle)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def journeys(self) -> list[Campaign]:
        result = await self.session.exec(select(Campaign).where(Campaign.kind == "journey"))
        return list(result.all())

    async def get_journey_state(self, journey_id: str, customer_id: str) -> JourneyState | None:
        return await self.session.get(JourneyState, (journey_id, customer_id))

    async def journey_states_of(self, customer_id: str) -> list[JourneyState]:
        result = await self.session.exec(
            select(JourneyState).where(JourneyState.customer_id == customer_id)
        )
        return list(result.all())

    async def forget_journey_states(self, customer_id: str) -> None:
        await delete_rows(self.session, JourneyState, customer_id)
