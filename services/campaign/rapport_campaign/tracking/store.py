"""Every query of tracking: clicks, conversions, and unsubscribes waiting for profile.

`TrackingStore` is what the links' use cases (they only add rows), the unsubscribes' sync,
run by the worker, and a merge, an erasure and the export ask of it; `SqlTrackingStore`
answers on the transaction's session, and `rapport_campaign.testing` has the in-memory
fake. The module's functions are attribution's, run by the projection, and the reports'."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.shared import chunks, delete_rows, rows_of, update_rows
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


class TrackingStore(Protocol):
    def add(self, row: Click | Unsubscribe | Conversion) -> None: ...

    async def clicks_between(self, customer_id: str, start: datetime, end: datetime) -> list[Click]:
        """The customer's clicks from `start` to `end` (both included), oldest first."""
        ...

    async def conversion_for_order(self, order_key: str) -> Conversion | None:
        """The conversion an order (`customer:order id`) was credited to, if any."""
        ...

    async def clicks_of(self, customer_id: str) -> list[Click]: ...

    async def conversions_of(self, customer_id: str) -> list[Conversion]: ...

    async def unsubscribes_of(self, customer_id: str) -> list[Unsubscribe]: ...

    async def get_unsubscribe(self, unsubscribe_id: int) -> Unsubscribe | None: ...

    async def claim_unsynced_unsubscribes(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[Unsubscribe]:
        """Unsubscribes due for profile, leased to this worker until `lease_until` (their
        `next_attempt_at`), in id order."""
        ...

    async def move_tracking(self, from_id: str, to_id: str) -> None:
        """The clicks, conversions and unsubscribes of `from_id` become `to_id`'s."""
        ...

    async def anonymise_tracking(self, customer_id: str) -> None:
        """The customer's clicks and conversions stay for the campaign's totals, naming
        neither them nor their orders; their unsubscribes go."""
        ...


class SqlTrackingStore(SqlStore):
    """Clicks and unsubscribes added to the transaction's session, unsubscribes leased to
    the sync, a customer's rows read, moved and anonymised one statement a table."""

    async def clicks_of(self, customer_id: str) -> list[Click]:
        return await rows_of(self.session, Click, customer_id)

    async def clicks_between(self, customer_id: str, start: datetime, end: datetime) -> list[Click]:
        result = await self.session.exec(
            select(Click)
            .where(
                Click.customer_id == customer_id,
                col(Click.clicked_at) >= start,
                col(Click.clicked_at) <= end,
            )
            .order_by(col(Click.clicked_at), col(Click.id))
        )
        return list(result.all())

    async def conversion_for_order(self, order_key: str) -> Conversion | None:
        result = await self.session.exec(
            select(Conversion).where(Conversion.order_key == order_key)
        )
        return result.first()

    async def conversions_of(self, customer_id: str) -> list[Conversion]:
        return await rows_of(self.session, Conversion, customer_id)

    async def unsubscribes_of(self, customer_id: str) -> list[Unsubscribe]:
        return await rows_of(self.session, Unsubscribe, customer_id)

    async def get_unsubscribe(self, unsubscribe_id: int) -> Unsubscribe | None:
        return await self.session.get(Unsubscribe, unsubscribe_id)

    async def claim_unsynced_unsubscribes(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[Unsubscribe]:
        """Unsubscribes due for profile, leased to this worker until `lease_until`; those
        another worker is claiming are skipped (SKIP LOCKED)."""
        due = (
            select(col(Unsubscribe.id))
            .where(col(Unsubscribe.synced_at).is_(None), col(Unsubscribe.next_attempt_at) <= now)
            .order_by(col(Unsubscribe.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.exec(
            update(Unsubscribe)
            .where(col(Unsubscribe.id).in_(due.scalar_subquery()))
            .values(next_attempt_at=lease_until)
            .returning(col(Unsubscribe.id))
        )
        claimed = list(result.scalars().all())  # type: ignore[attr-defined]
        if not claimed:
            return []
        rows = await self.session.exec(
            select(Unsubscribe)
            .where(col(Unsubscribe.id).in_(claimed))
            .order_by(col(Unsubscribe.id))
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def move_tracking(self, from_id: str, to_id: str) -> None:
        for model in (Click, Conversion, Unsubscribe):
            await update_rows(self.session, model, from_id, {"customer_id": to_id})

    async def anonymise_tracking(self, customer_id: str) -> None:
        await update_rows(self.session, Click, customer_id, {"customer_id": None})
        await update_rows(
            self.session,
            Conversion,
            customer_id,
            {"customer_id": None, "order_id": None, "order_key": None},
        )
        await delete_rows(self.session, Unsubscribe, customer_id)
