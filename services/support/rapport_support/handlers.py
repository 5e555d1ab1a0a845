"""Events support reacts to, by type: its projection of who customers are and what they own.

The frequent types take the run a fetch brought at once (`@batch`); merges and erasures
come one at a time.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import HandlerMap, batch
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    OrderCompleted,
)
from rapport_support import lifecycle
from rapport_support.customers import projection as customer_projection
from rapport_support.products import projection as product_projection
from rapport_support.settings import Settings


@batch
async def on_customers_registered(
    events: list[CustomerRegistered], session: AsyncSession, settings: Settings
) -> None:
    """New customers become someone support can look up; mentions by their handles join them."""
    await customer_projection.add_registered_customers(session, settings, events)


@batch
async def on_customers_updated(
    events: list[CustomerUpdated], session: AsyncSession, settings: Settings
) -> None:
    """Contact details or handles changed."""
    await customer_projection.apply_customer_updates(session, settings, events)


@batch
async def on_consents_changed(
    events: list[ConsentGranted | ConsentRevoked], session: AsyncSession
) -> None:
    """The rep sees what the customer agreed to before contacting them."""
    await customer_projection.apply_consents(session, events)


async def on_customer_merged(event: CustomerMerged, session: AsyncSession) -> None:
    """The duplicate's products, tickets and mentions move to the surviving customer."""
    await lifecycle.apply_merge(session, event)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Everything personal goes; a tombstone of the id stays so late events are dropped."""
    await lifecycle.apply_erasure(session, event)


@batch
async def on_orders_completed(
    events: list[OrderCompleted], session: AsyncSession, settings: Settings
) -> None:
    """The products bought become products the customer owns, with their warranty."""
    await product_projection.record_orders(session, settings, events)


@batch
async def on_values_changed(events: list[CustomerValueChanged], session: AsyncSession) -> None:
    """Profile's customer value: the tier and lifetime value the rep sees."""
    await customer_projection.apply_values(session, events)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customers_registered],
    CustomerUpdated: [on_customers_updated],
    ConsentGranted: [on_consents_changed],
    ConsentRevoked: [on_consents_changed],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
    OrderCompleted: [on_orders_completed],
    CustomerValueChanged: [on_values_changed],
}
