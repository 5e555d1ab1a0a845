"""Campaigns, journeys, sending, tracking and attribution, in the caller's transaction.

Sending is split in three so no transaction is open while a message is on the wire:
`claim_due` leases due messages, `prepare` checks consent and caps and renders, and
`finish_sent` / `finish_failed` record the outcome with its events.
"""

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import delivery, service, store, template_data
from rapport_campaign.models import Campaign as CampaignRow
from rapport_campaign.models import (
    CampaignChannelRow,
    CampaignCreate,
    CampaignReport,
    ChannelAnalytics,
    ChannelRow,
    Click,
    Conversion,
    Counts,
    JourneyCreate,
    JourneyState,
    Message,
    MessageChannelRow,
    Unsubscribe,
    VariantReport,
)
from rapport_campaign.service import (
    Conflict,
    InvalidRequest,
    NotFound,
    consented,
    publish,
    resolve,
    utc,
)
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import Tokens, with_utm
from rapport_events import outbox
from rapport_events.base import utcnow
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import (
    CampaignConversionAttributed,
    CampaignMessageClicked,
    CampaignMessageDelivered,
    CampaignMessageOpened,
    CampaignMessageSent,
    CartUpdated,
    OrderCompleted,
)
from rapport_events.webhooks import retry_delay

# Unambiguous characters for offer codes (no 0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
RECOMMENDATION_DAYS = 90
# Key of a message's context holding the URLs it was sent with click tokens for.
LINKS = "links"


def _offer_code(prefix: str | None) -> str | None:
    if not prefix:
        return None
    return f"{prefix.upper()}-{''.join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))}"


def _rank(campaign_id: str, customer_id: str) -> str:
    # A stable shuffle: the same customer lands in the same variant on every replay.
    return hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).hexdigest()


def _pattern(variants: Sequence[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in variants for _ in range(int(v.get("weight", 1)))]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "campaign"


def _check_templates(variants: list[dict[str, Any]]) -> None:
    for variant in variants:
        try:
            delivery.check_variant(variant)
        except delivery.TemplateProblem as problem:
            raise InvalidRequest(f"template error in variant {problem}") from problem


# --- campaigns -------------------------------------------------------------------------------


async def create_campaign(session: AsyncSession, data: CampaignCreate) -> CampaignRow:
    """Save a broadcast as a draft (or scheduled, when it has a time and is launched)."""
    variants = [v.model_dump() for v in data.variants]
    _check_templates(variants)
    audience = data.audience
    if (
        audience.segment_id is not None
        and await store.get_segment(session, audience.segment_id) is None
    ):
        raise InvalidRequest(f"no segment {audience.segment_id}")
    campaign = CampaignRow(
        kind="broadcast",
        name=data.name,
        channel=data.channel,
        segment_id=audience.segment_id,
        customer_ids=list(dict.fromkeys(audience.customer_ids)) if audience.customer_ids else None,
        variants=variants,
        link=str(data.link) if data.link else None,
        offer_prefix=data.offer.prefix if data.offer else None,
        ab_test=data.ab_test.model_dump() if data.ab_test else None,
        frequency_cap=data.frequency_cap.model_dump() if data.frequency_cap else None,
        attribution_window_hours=data.attribution_window_hours,
        scheduled_at=utc(data.schedule_at) if data.schedule_at else None,
    )
    store.add(session, campaign)
    await session.flush()
    return campaign


async def get_campaign(
    session: AsyncSession, campaign_id: str, kind: str | None = None
) -> CampaignRow:
    campaign = await store.get_campaign(session, campaign_id)
    if campaign is None or (kind is not None and campaign.kind != kind):
        raise NotFound(f"no {'journey' if kind == 'journey' else 'campaign'} {campaign_id}")
    return campaign


async def list_campaigns(session: AsyncSession, kind: str) -> list[CampaignRow]:
    return await store.list_campaigns(session, kind)


async def launch_campaign(
    session: AsyncSession, campaign_id: str, at: datetime | None
) -> CampaignRow:
    """Send now, or schedule for `at` (or the campaign's own schedule)."""
    campaign = await store.lock_campaign(session, campaign_id)
    if campaign is None or campaign.kind != "broadcast":
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status not in ("draft", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only a draft is launched")
    now = utcnow()
    when = utc(at) if at else (utc(campaign.scheduled_at) if campaign.scheduled_at else None)
    if when is not None and when > now:
        campaign.status = "scheduled"
        campaign.scheduled_at = when
        session.add(campaign)
        return campaign
    await start_sending(session, campaign, now)
    return campaign


async def start_sending(session: AsyncSession, campaign: CampaignRow, now: datetime) -> int:
    """Create one message per recipient; returns how many were targeted."""
    if campaign.segment_id is not None:
        recipients = sorted(await store.member_ids(session, campaign.segment_id))
    else:
        resolved = [await resolve(session, cid) for cid in campaign.customer_ids or []]
        recipients = list(dict.fromkeys(cid for cid in resolved if cid is not None))
    recipients.sort(key=lambda cid: _rank(campaign.id, cid))
    pattern = _pattern(campaign.variants)
    tested = len(recipients)
    if campaign.ab_test:
        fraction = float(campaign.ab_test["test_fraction"])
        tested = min(
            len(recipients), max(len(campaign.variants), round(len(recipients) * fraction))
        )
        campaign.decide_at = now + timedelta(
            minutes=float(campaign.ab_test["decide_after_minutes"])
        )
    rows: list[dict[str, Any]] = [
        {
            "id": secrets.token_hex(16),
            "campaign_id": campaign.id,
            "customer_id": customer_id,
            "channel": campaign.channel,
            "variant": pattern[index % len(pattern)] if index < tested else None,
            "status": "pending" if index < tested else "held",
            "offer_code": _offer_code(campaign.offer_prefix),
            "context": {},
            "attempts": 0,
            "due_at": now,
            "created_at": now,
        }
        for index, customer_id in enumerate(recipients)
    ]
    await store.insert_messages(session, rows)
    campaign.status = "sending" if rows else "sent"
    campaign.launched_at = now
    if not rows:
        campaign.completed_at = now
    session.add(campaign)
    return len(rows)


async def cancel_campaign(session: AsyncSession, campaign_id: str) -> CampaignRow:
    """Stop a campaign: messages not yet sent are cancelled."""
    campaign = await store.lock_campaign(session, campaign_id)
    if campaign is None or campaign.kind != "broadcast":
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status in ("sent", "cancelled"):
        raise Conflict(f"campaign {campaign_id} is already {campaign.status}")
    await store.cancel_messages(session, campaign.id)
    campaign.status = "cancelled"
    campaign.completed_at = utcnow()
    session.add(campaign)
    return campaign


async def launch_due(session: AsyncSession, now: datetime) -> int:
    """Start the scheduled campaigns whose time has come."""
    started = 0
    for campaign in await store.due_campaigns(session, now):
        await start_sending(session, campaign, now)
        started += 1
    return started


def _best_variant(names: list[str], results: dict[str, tuple[int, int, int]]) -> str:
    """The variant with the best conversion rate, then click rate, then the first listed."""

    def score(name: str) -> tuple[float, float, int]:
        sent, clicked, converted = results.get(name, (0, 0, 0))
        return (
            converted / sent if sent else 0.0,
            clicked / sent if sent else 0.0,
            -names.index(name),
        )

    return max(names, key=score)


async def decide_winners(session: AsyncSession, now: datetime) -> int:
    """Pick the A/B winner by conversion rate (then click rate) and release the held messages."""
    decided = 0
    for campaign in await store.campaigns_to_decide(session, now):
        results = await store.variant_results(session, campaign.id)
        campaign.winner = _best_variant(
            [v["name"] for v in campaign.variants],
            results,
        )
        await store.release_held_messages(session, campaign.id, campaign.winner, now)
        session.add(campaign)
        decided += 1
    return decided


async def complete_finished(session: AsyncSession, now: datetime) -> int:
    """Mark broadcasts whose every message reached an end state as sent."""
    completed = 0
    for campaign in await store.sending_campaigns(session):
        if await store.unfinished_messages(session, campaign.id) == 0:
            campaign.status = "sent"
            campaign.completed_at = now
            session.add(campaign)
            completed += 1
    return completed


# --- journeys ---------------------------------------------------------------------------------


async def create_journey(session: AsyncSession, data: JourneyCreate) -> CampaignRow:
    """Save a triggered journey; it acts on events that happen from now on."""
    variants = [v.model_dump() for v in data.variants]
    _check_templates(variants)
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
    store.add(session, journey)
    await session.flush()
    if data.trigger == "re_engagement":
        await _arm_everyone(session, journey)
    return journey


async def _arm_everyone(session: AsyncSession, journey: CampaignRow) -> None:
    """Start the inactivity clock of every known customer, from now at the earliest."""
    days = float(journey.trigger_config["inactivity_days"])
    created = utc(journey.created_at)
    withdrawn = await store.withdrawn_customers(session, journey.channel)
    members = [m for m in await store.audience_activity(session) if m[0] not in withdrawn]
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
    await store.insert_journey_states(session, rows)


async def set_journey_active(session: AsyncSession, journey_id: str, active: bool) -> CampaignRow:
    """Pause or resume a journey; a paused journey neither arms nor fires timers."""
    journey = await get_campaign(session, journey_id, "journey")
    journey.active = active
    journey.status = "active" if active else "paused"
    session.add(journey)
    return journey


async def _state(session: AsyncSession, journey_id: str, customer_id: str) -> JourneyState:
    state = await store.get_journey_state(session, journey_id, customer_id)
    if state is None:
        state = JourneyState(journey_id=journey_id, customer_id=customer_id, cycle=1, fired_cycle=0)
    return state


async def _withdrawn(session: AsyncSession, customer_id: str, channel: str) -> bool:
    """The customer took marketing on this channel back (a revocation or an unsubscribe).

    A customer whose consent is not known yet still arms timers: the grant often follows the
    registration, and the send-time check suppresses what goes out without one.
    """
    consent = await store.get_consent(session, customer_id, channel)
    return consent is not None and not consented(consent)


def _new_cycle(state: JourneyState) -> None:
    # After a firing, the next trigger belongs to a new cycle and may fire again.
    if state.fired_cycle >= state.cycle:
        state.cycle += 1


async def on_registered(session: AsyncSession, customer_id: str, registered_at: datetime) -> None:
    """Arm welcome journeys, and start the inactivity clock."""
    for journey in await store.active_journeys(session, "welcome"):
        if registered_at < utc(journey.created_at):
            continue
        if await store.get_journey_state(session, journey.id, customer_id) is not None:
            continue  # a welcome is once per customer, ever
        if await _withdrawn(session, customer_id, journey.channel):
            continue
        delay = timedelta(minutes=float(journey.trigger_config.get("delay_minutes", 0)))
        store.add(
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
    for journey in await store.journeys(session):
        if journey.trigger not in ("welcome", "abandoned_cart"):
            continue
        state = await store.get_journey_state(session, journey.id, customer_id)
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


async def stop_journeys(session: AsyncSession, customer_id: str, channel: str) -> None:
    """A withdrawn consent disarms the customer's timers on that channel.

    Later activity does not arm them again until a new grant (see `_withdrawn`).
    """
    for journey in await store.journeys(session):
        if journey.channel != channel:
            continue
        state = await store.get_journey_state(session, journey.id, customer_id)
        if state is not None and state.due_at is not None:
            state.due_at = None
            state.updated_at = utcnow()
            session.add(state)


async def fire_due_journeys(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Turn due timers into messages: each fires once per customer per cycle."""
    fired = 0
    for state in await store.due_journey_states(session, now, limit):
        journey = await store.get_campaign(session, state.journey_id)
        due_at = state.due_at
        assert due_at is not None
        if not await store.claim_journey_state(session, state, due_at):
            continue
        if journey is None or not journey.active:
            continue
        if await _withdrawn(session, state.customer_id, journey.channel):
            continue  # the cycle counts as spent: a new grant and new activity open the next
        pattern = _pattern(journey.variants)
        variant = pattern[int(_rank(journey.id, state.customer_id), 16) % len(pattern)]
        store.add(
            session,
            Message(
                campaign_id=journey.id,
                customer_id=state.customer_id,
                channel=journey.channel,
                variant=variant,
                offer_code=_offer_code(journey.offer_prefix),
                context={**(state.context or {}), "cycle": state.cycle},
                due_at=now,
            ),
        )
        fired += 1
    return fired


# --- sending ----------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """A rendered message, ready for its channel."""

    message_id: str
    campaign_id: str
    customer_id: str
    channel: str
    variant: str | None
    address: str
    rendered: delivery.Rendered
    unsubscribe_url: str
    open_url: str
    # The end of the lease the message was prepared under: the outcome is recorded only once.
    lease: datetime | None = None


@dataclass
class Recommender:
    """Popular products of the last 90 days, cached: each message picks one it has not bought."""

    ttl_s: float = 300.0
    _products: list[dict[str, Any]] = field(default_factory=list)
    _loaded_at: datetime | None = None

    async def recommend(self, session: AsyncSession, customer_id: str) -> dict[str, Any] | None:
        now = utcnow()
        if self._loaded_at is None or (now - self._loaded_at).total_seconds() > self.ttl_s:
            self._products = await store.popular_products(
                session, since=now - timedelta(days=RECOMMENDATION_DAYS), limit=200
            )
            self._loaded_at = now
        bought = await store.bought_products(session, customer_id)
        owned = {product for product, _ in bought}
        categories: dict[str, int] = {}
        for _, category in bought:
            if category:
                categories[category] = categories.get(category, 0) + 1
        favourite = max(categories, key=lambda c: (categories[c], c)) if categories else None
        candidates = [p for p in self._products if p["product_id"] not in owned]
        for product in candidates:
            if favourite is not None and product["category"] == favourite:
                return product
        return candidates[0] if candidates else None


def recommendation(product: dict[str, Any] | None) -> template_data.Record | None:
    """The recommended product as templates see it (`recommendation.name`, ...)."""
    if product is None:
        return None
    return template_data.record(product, str(product.get("name") or product["product_id"]))


async def claim_due(session: AsyncSession, settings: Settings) -> list[Message]:
    """Lease a batch of due messages to this sender; each message's `due_at` is its lease."""
    now = utcnow()
    return await store.claim_due_messages(
        session, now, settings.send_batch_size, now + timedelta(seconds=settings.send_lease_s)
    )


def _finish(message: Message, status: str, reason: str | None) -> None:
    message.status = status
    message.reason = reason


def _address(channel: str, member: Any) -> str | None:
    if channel == "email":
        return member.email or None
    if channel == "sms":
        return member.phone
    if channel == "push":
        return member.customer_id  # the push provider maps customers to their devices
    handles = member.social_handles or {}
    return next((f"{platform}:{handle}" for platform, handle in sorted(handles.items())), None)


async def prepare(
    session: AsyncSession,
    message_id: str,
    settings: Settings,
    tokens: Tokens,
    recommender: Recommender,
    *,
    lease: datetime | None = None,
) -> Outgoing | None:
    """Check consent, frequency cap and address at send time, then render; None to skip.

    With the `lease` the message was claimed under, the lease is first renewed for the whole
    `send_lease_s`: a claim that ran out (a batch queued behind a slow channel) or that
    another sender took over is skipped, so one claim puts a message on the wire at most once.
    """
    now = utcnow()
    renewed = now + timedelta(seconds=settings.send_lease_s)
    if lease is not None and not await store.renew_message_lease(
        session, message_id, lease, now, renewed
    ):
        return None
    message = await store.get_message(session, message_id)
    if message is None or message.status != "sending":
        return None
    campaign = await store.get_campaign(session, message.campaign_id)
    if campaign is None or message.customer_id is None:
        _finish(message, "cancelled", "campaign or customer gone")
        session.add(message)
        return None
    customer_id = message.customer_id
    channel = message.channel
    member = await store.get_member(session, customer_id)
    consent = await store.get_consent(session, customer_id, channel)
    if not consented(consent):
        _finish(message, "suppressed", f"no marketing consent on {channel}")
        session.add(message)
        return None
    cap = campaign.frequency_cap or {
        "max_messages": settings.frequency_cap_messages,
        "per_hours": settings.frequency_cap_hours,
    }
    since = utcnow() - timedelta(hours=float(cap["per_hours"]))
    if await store.sent_since(session, customer_id, channel, since) >= int(cap["max_messages"]):
        _finish(
            message, "capped", f"{cap['max_messages']} {channel} messages in {cap['per_hours']}h"
        )
        session.add(message)
        return None
    address = _address(channel, member) if member is not None else None
    if address is None:
        _finish(message, "unreachable", f"no {channel} address known")
        session.add(message)
        return None
    variant = next(
        (v for v in campaign.variants if v["name"] == message.variant), campaign.variants[0]
    )
    unsubscribe_url = tokens.unsubscribe_url(message.id, customer_id, channel)
    # Every URL given a click token is kept on the message: `/t` follows only those.
    links: set[str] = set()

    def track(url: Any) -> str:
        links.add(str(url))
        return tokens.click_url(message.id, str(url))

    assert member is not None
    context = {
        "customer": template_data.customer(member),
        "recommendation": recommendation(await recommender.recommend(session, customer_id)),
        "offer_code": message.offer_code,
        "cta_url": track(campaign.link) if campaign.link else None,
        "unsubscribe_url": unsubscribe_url,
        "campaign": template_data.record({"id": campaign.id, "name": campaign.name}, campaign.name),
        "cart": template_data.cart((message.context or {}).get("cart")),
        "order": await store.last_order(session, customer_id),
    }
    try:
        rendered = delivery.render(variant, context, track=track)
    except delivery.TemplateProblem as problem:
        _finish(message, "failed", f"template: {problem}"[:500])
        session.add(message)
        return None
    message.address = address[:320]
    # A retry may render other links (a new recommendation); the earlier attempt's may
    # have reached the reader all the same, so they stay.
    links.update(message_links(message))
    message.context = {**(message.context or {}), LINKS: sorted(links)}
    # Committed before the send: should this sender die before recording the outcome, the
    # next claim knows the channel may have it (see store.claim_due_messages).
    message.reason = store.IN_FLIGHT
    session.add(message)
    return Outgoing(
        message_id=message.id,
        campaign_id=campaign.id,
        customer_id=customer_id,
        channel=channel,
        variant=message.variant,
        address=address,
        rendered=rendered,
        unsubscribe_url=unsubscribe_url,
        open_url=tokens.open_url(message.id),
        lease=utc(message.due_at),
    )


async def finish_sent(session: AsyncSession, outgoing: Outgoing, settings: Settings) -> None:
    """The channel took the message: record it and publish sent and delivered (once)."""
    message = await store.get_message(session, outgoing.message_id)
    if message is None or message.status == "sent":
        return
    now = utcnow()
    message.status = "sent"
    message.reason = None
    message.attempts += 1
    message.sent_at = now
    message.delivered_at = now
    session.add(message)
    if message.customer_id is None:
        return
    fields = {
        "customer_id": message.customer_id,
        "campaign_id": message.campaign_id,
        "message_id": message.id,
        "channel": message.channel,
        "variant": message.variant,
    }
    publish(session, CampaignMessageSent(**fields), settings)
    publish(session, CampaignMessageDelivered(**fields), settings)


async def finish_failed(
    session: AsyncSession,
    message_id: str,
    error: str,
    permanent: bool,
    settings: Settings,
    *,
    lease: datetime | None = None,
) -> None:
    """Retry later with backoff, or give up after the last attempt.

    With the `lease` of the attempt, nothing changes once the message is no longer under it
    (another sender took it over, or it was sent meanwhile).
    """
    message = await store.get_message(session, message_id)
    if message is None:
        return
    if lease is not None and (message.status != "sending" or utc(message.due_at) != lease):
        return
    message.attempts += 1
    message.reason = error[:500]
    if permanent or message.attempts >= settings.send_max_attempts:
        message.status = "failed"
    else:
        message.status = "pending"
        message.due_at = utcnow() + retry_delay(message.attempts, settings.send_retry_base_s, 3600)
    session.add(message)


# --- tracking ---------------------------------------------------------------------------------


def _event_fields(message: Message) -> dict[str, Any]:
    return {
        "customer_id": message.customer_id,
        "campaign_id": message.campaign_id,
        "message_id": message.id,
        "channel": message.channel,
        "variant": message.variant,
    }


async def record_open(session: AsyncSession, message_id: str, settings: Settings) -> None:
    """The first open of a message is recorded and published; later ones change nothing."""
    message = await store.get_message(session, message_id)
    if message is None or message.opened_at is not None:
        return
    message.opened_at = utcnow()
    session.add(message)
    if message.customer_id is not None:
        publish(session, CampaignMessageOpened(**_event_fields(message)), settings)


def message_links(message: Message) -> list[str]:
    """The URLs the message was sent with click tokens for (none before they were kept)."""
    links = (message.context or {}).get(LINKS)
    return [link for link in links if isinstance(link, str)] if isinstance(links, list) else []


async def record_click(
    session: AsyncSession, message_id: str, url: str, settings: Settings
) -> str | None:
    """Record a click (and the open it implies); returns the target with UTM parameters.

    None, with nothing recorded, when no such message was sent with that link: a token
    is only as good as the secret that signed it, and the message is the second witness.
    """
    message = await store.get_message(session, message_id)
    if message is None or url not in message_links(message):
        return None
    campaign = await store.get_campaign(session, message.campaign_id)
    now = utcnow()
    if message.opened_at is None:
        await record_open(session, message_id, settings)
    if message.clicked_at is None:
        message.clicked_at = now
    session.add(message)
    store.add(
        session,
        Click(
            message_id=message.id,
            campaign_id=message.campaign_id,
            customer_id=message.customer_id,
            url=url[:2048],
            clicked_at=now,
        ),
    )
    if message.customer_id is not None:
        publish(session, CampaignMessageClicked(**_event_fields(message), url=url), settings)
    return with_utm(
        url,
        source="rapport",
        medium=message.channel,
        campaign=_slug(campaign.name) if campaign else message.campaign_id,
        content=message.variant,
    )


async def unsubscribe(
    session: AsyncSession,
    customer_id: str,
    channel: str,
    message_id: str | None,
    settings: Settings,
) -> bool:
    """Suppress the channel now, stop journeys on it, and queue the revocation for profile."""
    resolved = await resolve(session, customer_id)
    if resolved is None or channel not in service.CHANNELS:
        return False
    if await service.suppress_channel(session, resolved, channel):
        store.add(
            session, Unsubscribe(customer_id=resolved, channel=channel, message_id=message_id)
        )
        await stop_journeys(session, resolved, channel)
        await session.flush()
        await service.reevaluate(session, resolved, {"consent"}, settings)
    return True


async def claim_unsynced_unsubscribes(
    session: AsyncSession, lease_s: float, limit: int = 100
) -> list[Unsubscribe]:
    """Unsubscribes profile has not recorded yet, leased to this worker for `lease_s`."""
    now = utcnow()
    return await store.claim_unsynced_unsubscribes(
        session, now, limit, now + timedelta(seconds=lease_s)
    )


async def unsubscribe_synced(session: AsyncSession, unsubscribe_id: int, error: str | None) -> None:
    """Profile recorded the revocation (or cannot: `error`); stop retrying."""
    row = await session.get(Unsubscribe, unsubscribe_id)
    if row is not None:
        row.synced_at = utcnow()
        row.attempts += 1
        row.last_error = error[:500] if error else None
        session.add(row)


async def unsubscribe_failed(session: AsyncSession, unsubscribe_id: int, error: str) -> None:
    """Profile did not answer: try again later, backing off up to an hour."""
    row = await session.get(Unsubscribe, unsubscribe_id)
    if row is not None:
        row.attempts += 1
        row.last_error = error[:500]
        row.next_attempt_at = utcnow() + timedelta(seconds=min(2**row.attempts, 3600))
        session.add(row)


# --- attribution -----------------------------------------------------------------------------


async def attribute_order(
    session: AsyncSession, customer_id: str, event: OrderCompleted, settings: Settings
) -> Conversion | None:
    """Credit the order to a campaign message: its offer code, else a click in the window."""
    order_key = f"{customer_id}:{event.order_id}"[:200]
    if await store.conversion_for_order(session, order_key) is not None:
        return None
    ordered_at = utc(event.occurred_at)
    message: Message | None = None
    touch = "offer_code"
    if event.coupon:
        coded = await store.message_by_offer_code(session, event.coupon.upper())
        if coded is not None:
            if coded.redeemed_at is None:
                coded.redeemed_at = ordered_at
                coded.redeemed_order_id = event.order_id[:128]
                session.add(coded)
            if coded.customer_id == customer_id:
                message = coded
    if message is None:
        message = await _clicked_message(session, customer_id, ordered_at, settings)
        touch = "click"
    if message is None:
        return None
    conversion = Conversion(
        order_key=order_key,
        order_id=event.order_id[:128],
        message_id=message.id,
        campaign_id=message.campaign_id,
        customer_id=customer_id,
        variant=message.variant,
        revenue=event.revenue,
        currency=event.currency[:8],
        model=settings.attribution_model,
        touch=touch,
        occurred_at=ordered_at,
    )
    store.add(session, conversion)
    publish(
        session,
        CampaignConversionAttributed(
            customer_id=customer_id,
            campaign_id=message.campaign_id,
            message_id=message.id,
            order_id=event.order_id,
            revenue=event.revenue,
            currency=event.currency,
            model=settings.attribution_model,
        ),
        settings,
    )
    return conversion


async def _clicked_message(
    session: AsyncSession, customer_id: str, ordered_at: datetime, settings: Settings
) -> Message | None:
    """The clicked message credited under the attribution model, within its campaign's window."""
    longest = max(settings.attribution_window_hours, 24 * 365)
    clicks = await store.clicks_between(
        session, customer_id, ordered_at - timedelta(hours=longest), ordered_at
    )
    windows: dict[str, float] = {}
    eligible = []
    for click in clicks:
        if click.campaign_id not in windows:
            campaign = await store.get_campaign(session, click.campaign_id)
            windows[click.campaign_id] = (
                campaign.attribution_window_hours
                if campaign is not None and campaign.attribution_window_hours
                else settings.attribution_window_hours
            )
        if utc(click.clicked_at) >= ordered_at - timedelta(hours=windows[click.campaign_id]):
            eligible.append(click)
    if not eligible:
        return None
    chosen = eligible[-1] if settings.attribution_model == "last_touch" else eligible[0]
    return await store.get_message(session, chosen.message_id)


# --- reports ----------------------------------------------------------------------------------

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
    campaign = await get_campaign(session, campaign_id)
    totals = Counts()
    per_variant = {v["name"]: Counts() for v in campaign.variants}
    for row in await store.campaign_funnel(session, campaign.id):
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
    for variant, converted, revenue in await store.campaign_conversions(session, campaign.id):
        targets = [totals] + ([per_variant[variant]] if variant in per_variant else [])
        for counts in targets:
            counts.converted += converted
            counts.revenue += revenue
    for counts in [totals, *per_variant.values()]:
        counts.conversion_rate = _rate(counts.converted, counts.sent)
    winner = campaign.winner
    if winner is None and len(per_variant) > 1 and any(c.sent for c in per_variant.values()):
        winner = _best_variant(
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
    channels = [
        ChannelRow(
            acquisition_channel=channel or "unknown",
            customers=customers,
            buyers=buyers,
            orders=int(orders),
            revenue=Decimal(str(revenue)),
            conversion_rate=_rate(buyers, customers),
        )
        for channel, customers, buyers, orders, revenue in await store.acquisition_channels(session)
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


# --- one customer's marketing rows: merge and erasure -----------------------------------------


async def move_customer(session: AsyncSession, merged_id: str, survivor_id: str) -> None:
    """Messages, clicks, conversions and unsubscribes of a merged customer go to the survivor."""
    for model in (Message, Click, Conversion, Unsubscribe):
        await store.update_rows(session, model, merged_id, {"customer_id": survivor_id})
    await store.delete_rows(session, JourneyState, merged_id)


async def erase_customer(session: AsyncSession, customer_ids: Sequence[str]) -> None:
    """Anonymise the customer's messages and touches, drop timers and unsubscribe records,
    take the ids off stored audience lists and purge the sent events about them."""
    erased = set(customer_ids)
    for campaign in await store.campaigns_listing(session, customer_ids):
        campaign.customer_ids = [cid for cid in campaign.customer_ids or [] if cid not in erased]
        session.add(campaign)
    await outbox.delete_sent(session, customer_ids)
    checkpoint_after_commit(session)
    for customer_id in customer_ids:
        await store.cancel_customer_messages(session, customer_id)
        await store.update_rows(
            session,
            Message,
            customer_id,
            {
                "customer_id": None,
                "address": None,
                "offer_code": None,
                "context": {},
                "redeemed_order_id": None,
            },
        )
        await store.update_rows(session, Click, customer_id, {"customer_id": None})
        await store.update_rows(
            session,
            Conversion,
            customer_id,
            {"customer_id": None, "order_id": None, "order_key": None},
        )
        await store.delete_rows(session, JourneyState, customer_id)
        await store.delete_rows(session, Unsubscribe, customer_id)
