"""Events profile reacts to: every type lands on the timeline; some also feed metrics.

The hot types are applied a run at a time (`@batch`): a fetch's consecutive events of
one type reach `projection` together and are written with set-based statements.
"""

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.consumer import Handler, HandlerMap, batch
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import (
    EVENT_MODELS,
    CustomerErased,
    LoyaltyPointsEarned,
    OrderCompleted,
    PartnerDataDisclosed,
    SegmentEntered,
    SegmentExited,
)
from rapport_profile.analytics import projection as analytics_projection
from rapport_profile.customers import projection as customer_projection
from rapport_profile.gdpr import service as gdpr_service
from rapport_profile.settings import Settings
from rapport_profile.timeline import projection as timeline_projection


@batch
async def on_events(envelopes: Sequence[Envelope], session: AsyncSession) -> None:
    """Whatever any service published about a customer goes on their timeline."""
    await timeline_projection.record_timeline(session, envelopes)


@batch
async def on_orders(
    events: Sequence[OrderCompleted], session: AsyncSession, settings: Settings
) -> None:
    """Orders move the customers' metrics; each customer's new value is published once."""
    await analytics_projection.record_orders(session, events, settings.kafka.topic)


@batch
async def on_loyalty_points(events: Sequence[LoyaltyPointsEarned], session: AsyncSession) -> None:
    """Points change the loyalty balances."""
    await analytics_projection.record_points(session, events)


@batch
async def on_segment_changes(
    events: Sequence[SegmentEntered | SegmentExited], session: AsyncSession
) -> None:
    """Segment membership, for search by segment."""
    await customer_projection.record_segments(session, events)


@batch
async def on_disclosures(
    events: Sequence[PartnerDataDisclosed], envelopes: Sequence[Envelope], session: AsyncSession
) -> None:
    """The partner disclosure ledger of the customers."""
    await timeline_projection.record_disclosures(session, events, envelopes)


async def on_erased_event(envelope: Envelope, session: AsyncSession) -> None:
    """customer.erased on the timeline, one at a time like its purge."""
    await timeline_projection.record_timeline(session, [envelope])


async def on_customer_erased(
    event: CustomerErased, envelope: Envelope, session: AsyncSession
) -> None:
    """Make sure nothing about an erased customer remains, the outbox included."""
    await gdpr_service.purge(session, event.customer_id)
    await gdpr_service.purge_published(session, event.customer_id, envelope.id)
    checkpoint_after_commit(session)


SPECIFIC: dict[type, list[Handler]] = {
    OrderCompleted: [on_orders],
    LoyaltyPointsEarned: [on_loyalty_points],
    SegmentEntered: [on_segment_changes],
    SegmentExited: [on_segment_changes],
    PartnerDataDisclosed: [on_disclosures],
}

HANDLERS: HandlerMap = {
    **{model: [on_events, *SPECIFIC.get(model, [])] for model in EVENT_MODELS},
    # Rare, and its purge deletes aliases that later events resolve through: applied alone
    # so each of its records splits the runs around it.
    CustomerErased: [on_erased_event, on_customer_erased],
}
