"""Events campaign reacts to, by type: each maps to its projection function.

Each handler runs in the consumer's transaction with the inbox claim, so its
projection rows, journey timers, memberships and outbox events commit together.
The hot types take runs (`@batch`): a fetch's consecutive events of one type at once.
"""

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import lifecycle, shared
from rapport_campaign.audience import projection as audience_projection
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.segments import service as segment_service
from rapport_campaign.settings import Settings
from rapport_events.codec import Envelope
from rapport_events.consumer import HandlerMap, batch
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    InteractionTracked,
    LoyaltyPointsEarned,
    OrderCompleted,
    SurveyCompleted,
)


@batch
async def on_customer_registered(
    events: Sequence[CustomerRegistered], session: AsyncSession, settings: Settings
) -> None:
    """New customers join the audience, welcome journeys arm, every segment tests them."""
    await audience_projection.register_customers(session, events, settings)


@batch
async def on_customer_updated(
    events: Sequence[CustomerUpdated], session: AsyncSession, settings: Settings
) -> None:
    """Profile fields changed: segments on attributes are tested again."""
    await audience_projection.update_customers(session, events, settings)


@batch
async def on_consent_changed(
    events: Sequence[ConsentGranted | ConsentRevoked], session: AsyncSession, settings: Settings
) -> None:
    """Marketing consent per channel: checked at send time; a withdrawal stops journeys."""
    await audience_projection.apply_consents(session, events, settings)


@batch
async def on_order_completed(
    envelopes: Sequence[Envelope], session: AsyncSession, settings: Settings
) -> None:
    """Orders: metrics, offer redemption and attribution, journeys, segments."""
    await audience_projection.record_orders(session, envelopes, settings)


@batch
async def on_value_changed(
    events: Sequence[CustomerValueChanged], session: AsyncSession, settings: Settings
) -> None:
    """Profile's customer values: the metrics segments and the audience read."""
    await audience_projection.apply_values(session, events, settings)


@batch
async def on_cart_updated(
    envelopes: Sequence[Envelope], session: AsyncSession, settings: Settings
) -> None:
    """Cart changes arm the abandoned-cart timer."""
    await audience_projection.record_carts(session, envelopes, settings)


@batch
async def on_interaction_tracked(
    envelopes: Sequence[Envelope], session: AsyncSession, settings: Settings
) -> None:
    """Page views, searches and custom events are activity and behaviour."""
    await audience_projection.record_interactions(session, envelopes, settings)


async def on_customer_merged(
    event: CustomerMerged, session: AsyncSession, settings: Settings
) -> None:
    """The duplicate's rows move to the survivor, who is tested against every segment."""
    await lifecycle.apply_merge(session, event, settings)


async def on_customer_erased(event: CustomerErased, session: AsyncSession) -> None:
    """Erasure: personal data goes, a tombstone stays so late events are dropped."""
    await lifecycle.apply_erasure(session, event)


async def on_survey_completed(
    event: SurveyCompleted, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Survey answers: the NPS metric."""
    customer_id = await audience_projection.record_survey(session, event, envelope.id)
    if customer_id is None:
        return
    await journey_service.on_activity(session, customer_id, shared.utc(event.occurred_at))
    await segment_service.reevaluate(session, customer_id, {"survey"}, settings)


async def on_points_earned(
    event: LoyaltyPointsEarned, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Loyalty points: the balance metric."""
    customer_id = await audience_projection.record_points(session, event, envelope.id)
    if customer_id is not None:
        await segment_service.reevaluate(session, customer_id, {"loyalty"}, settings)


HANDLERS: HandlerMap = {
    CustomerRegistered: [on_customer_registered],
    CustomerUpdated: [on_customer_updated],
    CustomerMerged: [on_customer_merged],
    CustomerErased: [on_customer_erased],
    ConsentGranted: [on_consent_changed],
    ConsentRevoked: [on_consent_changed],
    OrderCompleted: [on_order_completed],
    CustomerValueChanged: [on_value_changed],
    CartUpdated: [on_cart_updated],
    InteractionTracked: [on_interaction_tracked],
    SurveyCompleted: [on_survey_completed],
    LoyaltyPointsEarned: [on_points_earned],
}
