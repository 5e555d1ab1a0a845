"""Every query of campaigns: lookups, the scheduler's locked reads, totals per campaign.

`CampaignStore` is what the use cases ask of it; `SqlCampaignStore` answers on the
transaction's session, and `rapport_campaign.testing` has the in-memory fake. The totals
are the reports', still a function of the session; the listing search is the erasure's."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Text, cast, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.messaging.models import Message
from rapport_campaign.shared import all_rows
from rapport_campaign.tracking.models import Conversion
from rapport_events.unit_of_work import SqlStore


class CampaignStore(Protocol):
    def add(self, row: Campaign) -> None: ...

    async def get_campaign(self, campaign_id: str) -> Campaign | None: ...

    async def lock_campaign(self, campaign_id: str) -> Campaign | None:
        """The campaign, locked against a concurrent launch or cancel."""
        ...

    async def list_campaigns(self, kind: str) -> list[Campaign]:
        """The campaigns of this kind, oldest first."""
        ...

    async def campaigns_using_segment(self, segment_id: str) -> list[Campaign]:
        """Drafts and scheduled campaigns that target the segment."""
        ...

    async def due_campaigns(self, now: datetime) -> list[Campaign]:
        """Scheduled campaigns whose time has come, locked for this launch."""
        ...

    async def campaigns_to_decide(self, now: datetime) -> list[Campaign]:
        """Sending A/B tests with no winner whose decision time has come, locked."""
        ...

    async def sending_campaigns(self) -> list[Campaign]:
        """Broadcasts still sending, locked."""
        ...

    async def campaigns_listing(self, customer_ids: Sequence[str]) -> list[Campaign]:
        """Campaigns whose stored audience list names one of these customers."""
        ...


class SqlCampaignStore(SqlStore):
    async def get_campaign(self, campaign_id: str) -> Campaign | None:
        return await self.session.get(Campaign, campaign_id)

    async def lock_campaign(self, campaign_id: str) -> Campaign | None:
        result = await self.session.exec(
            select(Campaign).where(Campaign.id == campaign_id).with_for_update()
        )
        return result.first()

    async def list_campaigns(self, kind: str) -> list[Campaign]:
        result = await self.session.exec(
            select(Campaign).where(Campaign.kind == kind).order_by(col(Campaign.created_at))
        )
        return list(result.all())

    async def campaigns_using_segment(self, segment_id: str) -> list[Campaign]:
        result = await self.session.exec(
            select(Campaign).where(
                Campaign.segment_id == segment_id, col(Campaign.status).in_(("draft", "scheduled"))
            )
        )
        return list(result.all())

    async def due_campaigns(self, now: datetime) -> list[Campaign]:
        """Scheduled campaigns whose time has come, locked for this launch.

        One being launched or cancelled by hand is locked, so it is skipped; PostgreSQL checks the
        status again on the row it locks, so one launched by hand just before is not due any more.
        """
        result = await self.session.exec(
            select(Campaign)
            .where(Campaign.status == "scheduled", col(Campaign.scheduled_at) <= now)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(result.all())

    async def campaigns_to_decide(self, now: datetime) -> list[Campaign]:
        """A/B tests due for a decision, locked: another scheduler skips them (SKIP LOCKED)."""
        result = await self.session.exec(
            select(Campaign)
            .where(
                Campaign.status == "sending",
                col(Campaign.winner).is_(None),
                col(Campaign.decide_at) <= now,
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(result.all())

    async def sending_campaigns(self) -> list[Campaign]:
        """Broadcasts still sending, locked against another scheduler and a cancel by hand."""
        result = await self.session.exec(
            select(Campaign)
            .where(Campaign.kind == "broadcast", Campaign.status == "sending")
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(result.all())

    async def campaigns_listing(self, customer_ids: Sequence[str]) -> list[Campaign]:
        if not customer_ids:
            return []
        # The list is JSON: its text holds each id in quotes. LIKE narrows, Python decides.
        listed = cast(col(Campaign.customer_ids), Text)
        query = select(Campaign).where(
            col(Campaign.customer_ids).is_not(None),
            or_(*(listed.contains(f'"{cid}"', autoescape=True) for cid in customer_ids)),
        )
        wanted = set(customer_ids)
        return [
            c for c in (await self.session.exec(query)).all() if wanted & set(c.customer_ids or [])
        ]


async def campaign_totals(session: AsyncSession) -> list[tuple[str, str, str, int, int, Any]]:
    """Per campaign: name, channel, messages sent, converted messages and attributed revenue."""
    sent = (
        select(Message.campaign_id, func.count(col(Message.sent_at)).label("sent"))
        .group_by(col(Message.campaign_id))
        .subquery()
    )
    converted = (
        select(
            Conversion.campaign_id,
            func.count(func.distinct(Conversion.message_id)).label("converted"),
            func.sum(Conversion.revenue).label("revenue"),
        )
        .group_by(col(Conversion.campaign_id))
        .subquery()
    )
    result = await all_rows(
        session,
        sa_select(
            col(Campaign.id),
            col(Campaign.name),
            col(Campaign.channel),
            func.coalesce(sent.c.sent, 0),
            func.coalesce(converted.c.converted, 0),
            func.coalesce(converted.c.revenue, 0),
        )
        .outerjoin(sent, sent.c.campaign_id == Campaign.id)
        .outerjoin(converted, converted.c.campaign_id == Campaign.id)
        .order_by(col(Campaign.created_at)),
    )
    return [tuple(row) for row in result]  # type: ignore[misc]
