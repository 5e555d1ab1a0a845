"""Events profile reacts to: every type lands on the timeline; some also feed metrics."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.consumer import Handler, HandlerMap
from rapport_events.types import (
    EVENT_MODELS,
    CustomerErased,
    LoyaltyPointsEarned,
    OrderCompleted,
    PartnerDataDisclosed,
    SegmentEntered,
    SegmentExited,
)
from rapport_profile import gdpr, timeline


async def on_any_event(envelope: Envelope, session: AsyncSession) -> None:
    """Whatever any service published about a customer goes on their timeline."""
    await timeline.record(session, envelope)


async def on_order_completed(event: OrderCompleted, session: AsyncSession) -> None:
    """An order moves the customer's metrics."""
    await timeline.record_order(session, event)


async def on_loyalty_points(event: LoyaltyPointsEarned, session: AsyncSession) -> None:
    """Points change the loyalty balance."""
    await timeline.record_points(session, event)


async def on_segment_change(event: SegmentEntered | SegmentExited, session: AsyncSession) -> None:
    """Segment membership, for search by segment."""
    await timeline.record_segment(session, event)


async def on_disclosure(
    event: PartnerDataDisclosed, envelope: Envelope, session: AsyncSession
) -> None:
    """The partner disclosure ledger of the customer."""
    await timeline.record_disclosure(session, event, envelope)


async def on_customer_erased(
    event: CustomerErased, envelope: Envelope, session: AsyncSession
) -> None:
    """Make sure nothing about an erased customer remains, the outbox included."""
    await gdpr.purge(session, event.customer_id)
    await gdpr.purge_published(session, event.customer_id, envelope.id)


SPECIFIC: dict[type, list[Handler]] = {
    OrderCompleted: [on_order_completed],
    LoyaltyPointsEarned: [on_loyalty_points],
    SegmentEntered: [on_segment_change],
    SegmentExited: [on_segment_change],
    PartnerDataDisclosed: [on_disclosure],
    CustomerErased: [on_customer_erased],
}

HANDLERS: HandlerMap = {model: [on_any_event, *SPECIFIC.get(model, [])] for model in EVENT_MODELS}
