"""Every query of tracking: clicks, conversions, and unsubscribes waiting for profile.

`TrackingStore` is what the links' use cases ask of it (they only add rows);
`SqlTrackingStore` answers on the transaction's session, and `rapport_campaign.testing` has
the in-memory fake. The module's functions are attribution's, run by the projection, the
unsubscribes' sync, run by the worker, and the reports'."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.shared import chunks
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_events.unit_of_work import SqlStore


async def customers_with_clicks(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers ever clicked a tracked link (attribution can credit them)."""
    ids, found = sorted(set(customer_ids)), set[str]()
    for chunk in chunks(ids):
        result = await session.exec(
            select(Click.customer_id).where(col(Click.customer_id).in_(chunk)).distinct()
        )
        found.update(cid for cid in result.all() if cid is not None)
    return found


async def clicks_between(
    session: AsyncSession, customer_id: str, start: datetime, end: datetime
) -> list[Click]:
    result = await session.exec(
        select(Click)
        .where(
            Click.customer_id == customer_id,
            col(Click.clicked_at) >= start,
            col(Click.clicked_at) <= end,
        )
        .order_by(col(Click.clicked_at), col(Click.id))
    )
    return list(result.all())


async def conversion_for_order(session: AsyncSession, order_key: str) -> Conversion | None:
    result = await session.exec(select(Conversion).where(Conversion.order_key == order_key))
    return result.first()


async def campaign_conversions(
    session: AsyncSession, campaign_id: str
) -> list[tuple[str | None, int, Decimal]]:
    """Per variant: converted messages and attributed revenue."""
    result = await session.exec(
        select(
            Conversion.variant,
            func.count(func.distinct(Conversion.message_id)),
            func.coalesce(func.sum(Conversion.revenue), 0),
        )
        .where(Conversion.campaign_id == campaign_id)
        .group_by(col(Conversion.variant))
    )
    return [(variant, int(n), Decimal(str(revenue))) for variant, n, revenue in result.all()]


async def claim_unsynced_unsubscribes(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[Unsubscribe]:
    """Unsubscribes due for profile, leased to this worker until `lease_until` (SKIP LOCKED)."""
    due = (
        select(col(Unsubscribe.id))
        .where(col(Unsubscribe.synced_at).is_(None), col(Unsubscribe.next_attempt_at) <= now)
        .order_by(col(Unsubscribe.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.exec(
        update(Unsubscribe)
        .where(col(Unsubscribe.id).in_(due.scalar_subquery()))
        .values(next_attempt_at=lease_until)
        .returning(col(Unsubscribe.id))
    )
    claimed = list(result.scalars().all())  # type: ignore[attr-defined]
    if not claimed:
        return []
    rows = await session.exec(
        select(Unsubscribe)
        .where(col(Unsubscribe.id).in_(claimed))
        .order_by(col(Unsubscribe.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


class TrackingStore(Protocol):
    def add(self, row: Click | Unsubscribe) -> None: ...


class SqlTrackingStore(SqlStore):
    """Clicks and unsubscribes added to the transaction's session."""
