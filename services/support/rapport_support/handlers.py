"""Events support reacts to, by type: its projection of who customers are and what they own."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import HandlerMap
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    OrderCompleted,
)
from rapport_support import service
from rapport_support.settings import Settings


async def on_customer_registered(
    event: CustomerRegistered, session: AsyncSession, settings: Settings
) -> None:
    """A new customer becomes someone support can look up; mentions by their handles join them."""
    await service.add_registered_customer(session, settings, event)


async def on_customer_updated(
    event: CustomerUpdated, session: AsyncSession, settings: Settings
) -> None:
    """Contact details, handles or tier changed."""
    await service.apply_customer_update(session, settings, event)


async def on_consent_changed(event: ConsentGranted | ConsentRevoked, session: AsyncSession) -> None:
    """The rep sees what the customer agreed to before contacting them."""
    await service.apply_consent(session, event)


async def on_customer_merged(event: CustomerMerged, session: AsyncSession) -> None:
    """The duplicate's products, tickets and mentions move to the surviving customer."""
    await service.apply_merge(session, event)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Everything personal goes; a tombstone of the id stays so late events are dropped."""
    await service.apply_erasure(session, event)


async def on_order_completed(
    event: OrderCompleted, session: AsyncSession, settings: Settings
) -> None:
    """The products bought become products the customer owns, with their warranty."""
    await service.record_order(session, settings, event)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customer_registered],
    CustomerUpdated: [on_customer_updated],
    ConsentGranted: [on_consent_changed],
    ConsentRevoked: [on_consent_changed],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
    OrderCompleted: [on_order_completed],
}
