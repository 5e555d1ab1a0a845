"""What campaigns achieved: the funnel of one campaign, and channel analytics."""

from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience import store as audience_store
from rapport_campaign.campaigns import service, store
from rapport_campaign.campaigns.models import (
    CampaignChannelRow,
    CampaignReport,
    ChannelAnalytics,
    ChannelRow,
    Counts,
    MessageChannelRow,
    VariantReport,
)
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import store as tracking_store
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork

_STATUS_COUNTS = {
    "held": "held",
    "pending": "pending",
    "sending": "pending",
    "suppressed": "suppressed",
    "capped": "capped",
    "unreachable": "unreachable",
    "failed": "failed",
    "cancelled": "cancelled",
    "sent": "sent",
}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def campaign_report(
    session: AsyncSession, campaign_id: str, settings: Settings
) -> CampaignReport:
    """The campaign's funnel, in total and per variant, with attributed revenue."""
    uow = SqlCampaignUnitOfWork(session)
    campaign = await service.get_campaign(uow, campaign_id)
    totals = Counts()
    per_variant = {v["name"]: Counts() for v in campaign.variants}
    for row in await uow.messages.campaign_funnel(campaign.id):
        targets = [totals] + (
            [per_variant[row["variant"]]] if row["variant"] in per_variant else []
        )
        for counts in targets:
            counts.targeted += row["count"]
            name = _STATUS_COUNTS.get(row["status"], "pending")
            setattr(counts, name, getattr(counts, name) + row["count"])
            counts.delivered += row["delivered"]
            counts.opened += row["opened"]
            counts.clicked += row["clicked"]
            counts.redeemed += row["redeemed"]
    for variant, converted, revenue in await tracking_store.campaign_conversions(
        session, campaign.id
    ):
        targets = [totals] + ([per_variant[variant]] if variant in per_variant else [])
        for counts in targets:
            counts.converted += converted
            counts.revenue += revenue
    for counts in [totals, *per_variant.values()]:
        counts.conversion_rate = _rate(counts.converted, counts.sent)
    winner = campaign.winner
    if winner is None and len(per_variant) > 1 and any(c.sent for c in per_variant.values()):
        winner = service.best_variant(
            list(per_variant),
            {n: (c.sent, c.clicked, c.converted) for n, c in per_variant.items()},
        )
    return CampaignReport(
        **totals.model_dump(),
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        attribution_model=settings.attribution_model,
        winner=winner,
        variants=[
            VariantReport(variant=name, **counts.model_dump())
            for name, counts in per_variant.items()
        ],
    )


async def channel_analytics(session: AsyncSession) -> ChannelAnalytics:
    """Customers, buyers and revenue per acquisition channel; reach and revenue per campaign."""
    acquisition = await audience_store.acquisition_channels(session)
    channels = [
        ChannelRow(
            acquisition_channel=channel or "unknown",
            customers=customers,
            buyers=buyers,
            orders=int(orders),
            revenue=Decimal(str(revenue)),
            conversion_rate=_rate(buyers, customers),
        )
        for channel, customers, buyers, orders, revenue in acquisition
    ]
    channels.sort(key=lambda row: (-row.revenue, row.acquisition_channel))
    campaigns = [
        CampaignChannelRow(
            campaign_id=cid,
            name=name,
            channel=channel,
            sent=int(sent),
            converted=int(converted),
            revenue=Decimal(str(revenue)),
            conversion_rate=_rate(int(converted), int(sent)),
        )
        for cid, name, channel, sent, converted, revenue in await store.campaign_totals(session)
    ]
    by_channel: dict[str, MessageChannelRow] = {}
    for row in campaigns:
        total = by_channel.setdefault(
            row.channel,
            MessageChannelRow(
                channel=row.channel, campaigns=0, sent=0, converted=0, revenue=Decimal(0)
            ),
        )
        total.campaigns += 1
        total.sent += row.sent
        total.converted += row.converted
        total.revenue += row.revenue
    for total in by_channel.values():
        total.conversion_rate = _rate(total.converted, total.sent)
    return ChannelAnalytics(
        acquisition_channels=channels,
        campaigns=campaigns,
        message_channels=sorted(by_channel.values(), key=lambda row: row.channel),
    )
