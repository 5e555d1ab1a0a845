"""Events partner-share reacts to, by type."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.consumer import HandlerMap
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
from rapport_partner_share import projection


async def on_customer_registered(event: CustomerRegistered, session: AsyncSession) -> None:
    """Partner-share learns that the customer exists (and nothing personal)."""
    await projection.note_registered_customer(session, event)


async def on_consent_granted(event: ConsentGranted, session: AsyncSession) -> None:
    """A partner_sharing consent starts or changes what a partner may see."""
    await projection.apply_consent_granted(session, event)


async def on_consent_revoked(event: ConsentRevoked, session: AsyncSession) -> None:
    """A revocation deletes the slices in this transaction; the partner is notified after."""
    await projection.apply_consent_revoked(session, event)


async def on_customer_updated(event: CustomerUpdated, session: AsyncSession) -> None:
    """Shared contact and demographics slices follow profile's changes."""
    await projection.apply_customer_updated(session, event)


async def on_order_completed(event: OrderCompleted, session: AsyncSession) -> None:
    """Shared purchase summaries count the order."""
    await projection.apply_order_completed(session, event)


async def on_segment_changed(event: SegmentEntered | SegmentExited, session: AsyncSession) -> None:
    """Shared segments slices follow membership."""
    await projection.apply_segment_change(session, event)


async def on_loyalty_points_earned(
    event: LoyaltyPointsEarned, session: AsyncSession, envelope: Envelope
) -> None:
    """Shared loyalty slices credit the points (once per event id)."""
    await projection.apply_loyalty_points(session, event, credit_id=envelope.id)


async def on_customer_merged(event: CustomerMerged, session: AsyncSession) -> None:
    """The duplicate's consents and slices move to the surviving customer."""
    await projection.apply_customer_merged(session, event)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Everything about the customer goes; partners are told; a tombstone stays."""
    await projection.apply_customer_erased(session, event)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customer_registered],
    ConsentGranted: [on_consent_granted],
    ConsentRevoked: [on_consent_revoked],
    CustomerUpdated: [on_customer_updated],
    OrderCompleted: [on_order_completed],
    SegmentEntered: [on_segment_changed],
    SegmentExited: [on_segment_changed],
    LoyaltyPointsEarned: [on_loyalty_points_earned],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
}
