"""Events campaign reacts to, by type.

Each handler runs in the consumer's transaction with the inbox claim, so its
projection rows, journey timers, memberships and outbox events commit together.
Every use case it calls is also safe to replay on its own.
"""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import marketing, service
from rapport_campaign.settings import Settings
from rapport_events.codec import Envelope
from rapport_events.consumer import HandlerMap
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    LoyaltyPointsEarned,
    OrderCompleted,
    SurveyCompleted,
)


async def on_customer_registered(
    event: CustomerRegistered, session: AsyncSession, settings: Settings
) -> None:
    """A new customer joins the audience, welcome journeys arm, every segment tests them."""
    member = await service.register_customer(session, event)
    if member is None:
        return
    await marketing.on_registered(session, member.customer_id, service.utc(event.occurred_at))
    await service.reevaluate(session, member.customer_id, None, settings)


async def on_customer_updated(
    event: CustomerUpdated, session: AsyncSession, settings: Settings
) -> None:
    """Profile fields changed: segments on attributes are tested again."""
    customer_id = await service.update_customer(session, event)
    if customer_id is not None:
        await service.reevaluate(session, customer_id, {"profile"}, settings)


async def on_customer_merged(
    event: CustomerMerged, session: AsyncSession, settings: Settings
) -> None:
    """The duplicate's rows move to the survivor, who is tested against every segment."""
    moved = await service.merge_customers(session, event, settings)
    if moved is None:
        return
    merged, survivor = moved
    await marketing.move_customer(session, merged, survivor)
    await service.reevaluate(session, survivor, None, settings)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Erasure: personal data goes, a tombstone stays so late events are dropped."""
    erased = await service.erase_customer(session, event.customer_id)
    await marketing.erase_customer(session, erased)


async def on_consent_changed(
    event: ConsentGranted | ConsentRevoked, session: AsyncSession, settings: Settings
) -> None:
    """Marketing consent per channel: checked at send time; a withdrawal stops journeys."""
    customer_id, revoked = await service.apply_consent(session, event)
    if customer_id is None:
        return
    for channel in revoked:
        await marketing.stop_journeys(session, customer_id, channel)
    await service.reevaluate(session, customer_id, {"consent"}, settings)


async def on_order_completed(
    event: OrderCompleted, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """An order: metrics, offer redemption and attribution, journeys, segments."""
    customer_id = await service.record_order(session, event, envelope.id)
    if customer_id is None:
        return
    await marketing.attribute_order(session, customer_id, event, settings)
    await marketing.on_order(session, customer_id, service.utc(event.occurred_at))
    await service.reevaluate(session, customer_id, {"order"}, settings)


async def on_cart_updated(
    event: CartUpdated, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """A cart change arms the abandoned-cart timer."""
    customer_id = await service.record_cart(session, event, envelope.id)
    if customer_id is None:
        return
    at = service.utc(event.occurred_at)
    await marketing.on_cart(session, customer_id, event, at)
    await marketing.on_activity(session, customer_id, at)
    await service.reevaluate(session, customer_id, {"cart"}, settings)


async def on_interaction_tracked(
    event: InteractionTracked, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """A page view, search or custom event is activity and behaviour."""
    customer_id = await service.record_interaction(session, event, envelope.id)
    if customer_id is None:
        return
    await marketing.on_activity(session, customer_id, service.utc(event.occurred_at))
    await service.reevaluate(session, customer_id, {"interaction"}, settings)


async def on_survey_completed(
    event: SurveyCompleted, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Survey answers: the NPS metric."""
    customer_id = await service.record_survey(session, event, envelope.id)
    if customer_id is None:
        return
    await marketing.on_activity(session, customer_id, service.utc(event.occurred_at))
    await service.reevaluate(session, customer_id, {"survey"}, settings)


async def on_points_earned(
    event: LoyaltyPointsEarned, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Loyalty points: the balance metric."""
    customer_id = await service.record_points(session, event, envelope.id)
    if customer_id is not None:
        await service.reevaluate(session, customer_id, {"loyalty"}, settings)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customer_registered],
    CustomerUpdated: [on_customer_updated],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
    ConsentGranted: [on_consent_changed],
    ConsentRevoked: [on_consent_changed],
    OrderCompleted: [on_order_completed],
    CartUpdated: [on_cart_updated],
    InteractionTracked: [on_interaction_tracked],
    SurveyCompleted: [on_survey_completed],
    LoyaltyPointsEarned: [on_points_earned],
}
