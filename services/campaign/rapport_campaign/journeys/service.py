"""Triggered journeys: create, pause; timers armed by events; due timers fired as messages."""

from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import shared
from rapport_campaign.audience import store as audience_store
from rapport_campaign.audience.models import ConsentState
from rapport_campaign.audience.service import consented
from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import Campaign as CampaignRow
from rapport_campaign.journeys import store
from rapport_campaign.journeys.models import JourneyCreate, JourneyState
from rapport_campaign.messaging.models import Message
from rapport_campaign.shared import utc
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.types import CartUpdated


async def create_journey(uow: CampaignUnitOfWork, data: JourneyCreate) -> CampaignRow:
    """Save a triggered journey; it acts on events that happen from now on."""
    variants = [v.model_dump() for v in data.variants]
    campaign_service.check_templates(variants)
    config: dict[str, Any] = {"delay_minutes": data.delay_minutes}
    if data.inactivity_days is not None:
        config["inactivity_days"] = data.inactivity_days
    journey = CampaignRow(
        kind="journey",
        name=data.name,
        channel=data.channel,
        status="active" if data.active else "paused",
        trigger=data.trigger,
        trigger_config=config,
        active=data.active,
        variants=variants,
        link=str(data.link) if data.link else None,
        offer_prefix=data.offer.prefix if data.offer else None,
        frequency_cap=data.frequency_cap.model_dump() if data.frequency_cap else None,
        attribution_window_hours=data.attribution_window_hours,
    )
    uow.campaigns.add(journey)
    await uow.flush()
    if data.trigger == "re_engagement":
        await _arm_everyone(uow, journey)
    return journey


async def _arm_everyone(uow: CampaignUnitOfWork, journey: CampaignRow) -> None:
    """Start the inactivity clock of every known customer, from now at the earliest."""
    days = float(journey.trigger_config["inactivity_days"])
    created = utc(journey.created_at)
    withdrawn = await uow.audience.withdrawn_customers(journey.channel)
    members = [m for m in await uow.audience.audience_activity() if m[0] not in withdrawn]
    rows = [
        {
            "journey_id": journey.id,
            "customer_id": customer_id,
            "cycle": 1,
            "fired_cycle": 0,
            "due_at": max(utc(last) if last else created, created) + timedelta(days=days),
            "context": {},
            "updated_at": created,
        }
        for customer_id, last in members
    ]
    await uow.journeys.insert_journey_states(rows)


async def set_journey_active(uow: CampaignUnitOfWork, journey_id: str, active: bool) -> CampaignRow:
    """Pause or resume a journey; a paused journey neither arms nor fires timers."""
    journey = await campaign_service.get_campaign(uow, journey_id, "journey")
    journey.active = active
    journey.status = "active" if active else "paused"
    uow.campaigns.add(journey)
    return journey


async def _state(session: AsyncSession, journey_id: str, customer_id: str) -> JourneyState:
    state = await store.SqlJourneyStore(session).get_journey_state(journey_id, customer_id)
    if state is None:
        state = JourneyState(journey_id=journey_id, customer_id=customer_id, cycle=1, fired_cycle=0)
    return state


async def _withdrawn(session: AsyncSession, customer_id: str, channel: str) -> bool:
    """The customer took marketing on this channel back (a revocation or an unsubscribe).

    A customer whose consent is not known yet still arms timers: the grant often follows the
    registration, and the send-time check suppresses what goes out without one.
    """
    return _took_back(
        await audience_store.SqlAudienceStore(session).get_consent(customer_id, channel)
    )


def _took_back(consent: ConsentState | None) -> bool:
    # No consent known yet is not a withdrawal (see `_withdrawn`).
    return consent is not None and not consented(consent)


def _new_cycle(state: JourneyState) -> None:
    # After a firing, the next trigger belongs to a new cycle and may fire again.
    if state.fired_cycle >= state.cycle:
        state.cycle += 1


async def on_registered(session: AsyncSession, customer_id: str, registered_at: datetime) -> None:
    """Arm welcome journeys, and start the inactivity clock."""
    states = store.SqlJourneyStore(session)
    for journey in await store.active_journeys(session, "welcome"):
        if registered_at < utc(journey.created_at):
            continue
        if await states.get_journey_state(journey.id, customer_id) is not None:
            continue  # a welcome is once per customer, ever
        if await _withdrawn(session, customer_id, journey.channel):
            continue
        delay = timedelta(minutes=float(journey.trigger_config.get("delay_minutes", 0)))
        shared.add(
            session,
            JourneyState(
                journey_id=journey.id,
                customer_id=customer_id,
                due_at=registered_at + delay,
                updated_at=utcnow(),
            ),
        )
    await on_activity(session, customer_id, registered_at)


async def on_activity(session: AsyncSession, customer_id: str, at: datetime) -> None:
    """Push back re-engagement timers: inactivity counts from the latest activity."""
    for journey in await store.active_journeys(session, "re_engagement"):
        if await _withdrawn(session, customer_id, journey.channel):
            continue
        state = await _state(session, journey.id, customer_id)
        _new_cycle(state)
        days = float(journey.trigger_config["inactivity_days"])
        due = max(at, utc(journey.created_at)) + timedelta(days=days)
        if state.due_at is None or utc(state.due_at) < due:
            state.due_at = due
        state.updated_at = utcnow()
        session.add(state)


async def on_cart(
    session: AsyncSession, customer_id: str, event: CartUpdated, at: datetime
) -> None:
    """Arm (or re-arm) abandoned-cart timers; an emptied cart disarms them."""
    empty = not event.items and event.value == 0
    for journey in await store.active_journeys(session, "abandoned_cart"):
        if at < utc(journey.created_at) or await _withdrawn(session, customer_id, journey.channel):
            continue
        state = await _state(session, journey.id, customer_id)
        if state.fired_cycle >= state.cycle:
            continue  # this cart already had its reminder; an order starts a new cycle
        if empty:
            state.due_at = None
        else:
            delay = timedelta(minutes=float(journey.trigger_config["delay_minutes"]))
            state.due_at = at + delay
            state.context = {
                "cart": {
                    "cart_id": event.cart_id,
                    "value": str(event.value),
                    "currency": event.currency,
                    "items": [item.model_dump(mode="json") for item in event.items],
                }
            }
        state.updated_at = utcnow()
        session.add(state)


async def on_order(session: AsyncSession, customer_id: str, at: datetime) -> None:
    """A conversion stops pending welcome and abandoned-cart timers and opens a new cycle."""
    journeys = store.SqlJourneyStore(session)
    for journey in await journeys.journeys():
        if journey.trigger not in ("welcome", "abandoned_cart"):
            continue
        state = await journeys.get_journey_state(journey.id, customer_id)
        if state is None:
            continue
        state.due_at = None
        if journey.trigger == "abandoned_cart":
            _new_cycle(state)
        else:
            state.fired_cycle = state.cycle  # the welcome is moot once they bought
        state.context = {}
        state.updated_at = utcnow()
        session.add(state)
    await on_activity(session, customer_id, at)


async def stop_journeys(uow: CampaignUnitOfWork, customer_id: str, channel: str) -> None:
    """A withdrawn consent disarms the customer's timers on that channel.

    Later activity does not arm them again until a new grant (see `_withdrawn`).
    """
    for journey in await uow.journeys.journeys():
        if journey.channel != channel:
            continue
        state = await uow.journeys.get_journey_state(journey.id, customer_id)
        if state is not None and state.due_at is not None:
            state.due_at = None
            state.updated_at = utcnow()
            uow.journeys.add(state)


async def fire_due_journeys(uow: CampaignUnitOfWork, now: datetime, limit: int = 500) -> int:
    """Turn due timers into messages: each fires once per customer per cycle."""
    fired = 0
    for state in await uow.journeys.due_journey_states(now, limit):
        journey = await uow.campaigns.get_campaign(state.journey_id)
        due_at = state.due_at
        assert due_at is not None
        if not await uow.journeys.claim_journey_state(state, due_at):
            continue
        if journey is None or not journey.active:
            continue
        if _took_back(await uow.audience.get_consent(state.customer_id, journey.channel)):
            continue  # the cycle counts as spent: a new grant and new activity open the next
        pattern = campaign_service.variant_pattern(journey.variants)
        variant = pattern[
            int(campaign_service.send_rank(journey.id, state.customer_id), 16) % len(pattern)
        ]
        uow.messages.add(
            Message(
                campaign_id=journey.id,
                customer_id=state.customer_id,
                channel=journey.channel,
                variant=variant,
                offer_code=campaign_service.new_offer_code(journey.offer_prefix),
                context={**(state.context or {}), "cycle": state.cycle},
                due_at=now,
            ),
        )
        fired += 1
    return fired
