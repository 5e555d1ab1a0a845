"""Events partner-share reacts to, by type: the frequent ones a run at a time (`@batch`),
each sent to the projection of its domain; merges and erasures, one at a time, to
`lifecycle`."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.consumer import HandlerMap, batch
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)
from rapport_partner_share import lifecycle
from rapport_partner_share.consents import projection as consent_projection
from rapport_partner_share.customers import projection as customer_projection
from rapport_partner_share.slices import projection as slice_projection


@batch
async def on_customers_registered(events: list[CustomerRegistered], session: AsyncSession) -> None:
    """Partner-share learns that the customers exist (and nothing personal)."""
    await customer_projection.note_registered_customers(session, events)


@batch
async def on_consents_changed(
    events: list[ConsentGranted | ConsentRevoked], session: AsyncSession
) -> None:
    """A grant starts or changes what a partner may see; a revocation deletes the slices in
    this transaction, and the partner is notified after."""
    await consent_projection.apply_consents(session, events)


@batch
async def on_customers_updated(events: list[CustomerUpdated], session: AsyncSession) -> None:
    """Shared contact and demographics slices follow profile's changes."""
    await slice_projection.apply_customers_updated(session, events)


@batch
async def on_orders_completed(events: list[OrderCompleted], session: AsyncSession) -> None:
    """Shared purchase summaries count the orders."""
    await slice_projection.apply_orders_completed(session, events)


@batch
async def on_segments_changed(
    events: list[SegmentEntered | SegmentExited], session: AsyncSession
) -> None:
    """Shared segments slices follow membership."""
    await slice_projection.apply_segment_changes(session, events)


@batch
async def on_loyalty_points_earned(envelopes: list[Envelope], session: AsyncSession) -> None:
    """Shared loyalty slices credit the points (once per event id)."""
    await slice_projection.apply_loyalty_points(session, envelopes)


async def on_customer_merged(event: CustomerMerged, session: AsyncSession) -> None:
    """The duplicate's consents and slices move to the surviving customer."""
    await lifecycle.apply_customer_merged(session, event)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Everything about the customer goes; partners are told; a tombstone stays."""
    await lifecycle.apply_customer_erased(session, event)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customers_registered],
    ConsentGranted: [on_consents_changed],
    ConsentRevoked: [on_consents_changed],
    CustomerUpdated: [on_customers_updated],
    OrderCompleted: [on_orders_completed],
    SegmentEntered: [on_segments_changed],
    SegmentExited: [on_segments_changed],
    LoyaltyPointsEarned: [on_loyalty_points_earned],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
}
