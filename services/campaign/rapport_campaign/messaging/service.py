"""Sending, in the caller's unit of work.

Sending is split in three so no transaction is open while a message is on the wire:
`claim_due` leases due messages, `prepare` checks consent and caps and renders, and
`finish_sent` / `finish_failed` record the outcome with its events. The worker runs each
step in a transaction of its own (`rapport_campaign.worker`)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rapport_campaign.audience.service import consented
from rapport_campaign.audience.store import AudienceStore
from rapport_campaign.messaging import delivery, template_data
from rapport_campaign.messaging.models import LINKS, Message
from rapport_campaign.messaging.store import IN_FLIGHT
from rapport_campaign.settings import Settings
from rapport_campaign.shared import utc
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.types import CampaignMessageDelivered, CampaignMessageSent
from rapport_events.webhooks import retry_delay

RECOMMENDATION_DAYS = 90


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

    async def recommend(self, audience: AudienceStore, customer_id: str) -> dict[str, Any] | None:
        """A popular product the customer has not bought, of their favourite category if any."""
        now = utcnow()
        if self._loaded_at is None or (now - self._loaded_at).total_seconds() > self.ttl_s:
            self._products = await audience.popular_products(
                since=now - timedelta(days=RECOMMENDATION_DAYS), limit=200
            )
            self._loaded_at = now
        bought = await audience.bought_products(customer_id)
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


async def claim_due(uow: CampaignUnitOfWork, settings: Settings) -> list[Message]:
    """Lease a batch of due messages to this sender; each message's `due_at` is its lease."""
    now = utcnow()
    return await uow.messages.claim_due_messages(
        now, settings.send_batch_size, now + timedelta(seconds=settings.send_lease_s)
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
    uow: CampaignUnitOfWork,
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
    if lease is not None and not await uow.messages.renew_message_lease(
        message_id, lease, now, renewed
    ):
        return None
    message = await uow.messages.get_message(message_id)
    if message is None or message.status != "sending":
        return None
    campaign = await uow.campaigns.get_campaign(message.campaign_id)
    if campaign is None or message.customer_id is None:
        _finish(message, "cancelled", "campaign or customer gone")
        uow.messages.add(message)
        return None
    customer_id = message.customer_id
    channel = message.channel
    member = await uow.audience.get_member(customer_id)
    consent = await uow.audience.get_consent(customer_id, channel)
    if not consented(consent):
        _finish(message, "suppressed", f"no marketing consent on {channel}")
        uow.messages.add(message)
        return None
    cap = campaign.frequency_cap or {
        "max_messages": settings.frequency_cap_messages,
        "per_hours": settings.frequency_cap_hours,
    }
    since = utcnow() - timedelta(hours=float(cap["per_hours"]))
    if await uow.messages.sent_since(customer_id, channel, since) >= int(cap["max_messages"]):
        _finish(
            message, "capped", f"{cap['max_messages']} {channel} messages in {cap['per_hours']}h"
        )
        uow.messages.add(message)
        return None
    address = _address(channel, member) if member is not None else None
    if address is None:
        _finish(message, "unreachable", f"no {channel} address known")
        uow.messages.add(message)
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
        "recommendation": recommendation(await recommender.recommend(uow.audience, customer_id)),
        "offer_code": message.offer_code,
        "cta_url": track(campaign.link) if campaign.link else None,
        "unsubscribe_url": unsubscribe_url,
        "campaign": template_data.record({"id": campaign.id, "name": campaign.name}, campaign.name),
        "cart": template_data.cart((message.context or {}).get("cart")),
        "order": await uow.audience.last_order(customer_id),
    }
    try:
        rendered = delivery.render(variant, context, track=track)
    except delivery.TemplateProblem as problem:
        _finish(message, "failed", f"template: {problem}"[:500])
        uow.messages.add(message)
        return None
    message.address = address[:320]
    # A retry may render other links (a new recommendation); the earlier attempt's may
    # have reached the reader all the same, so they stay.
    links.update(tracking_service.message_links(message))
    message.context = {**(message.context or {}), LINKS: sorted(links)}
    # Committed before the send: should this sender die before recording the outcome, the
    # next claim knows the channel may have it (see MessageStore.claim_due_messages).
    message.reason = IN_FLIGHT
    uow.messages.add(message)
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


async def finish_sent(uow: CampaignUnitOfWork, outgoing: Outgoing) -> None:
    """The channel took the message: record it and publish sent and delivered (once)."""
    message = await uow.messages.get_message(outgoing.message_id)
    if message is None or message.status == "sent":
        return
    now = utcnow()
    message.status = "sent"
    message.reason = None
    message.attempts += 1
    message.sent_at = now
    message.delivered_at = now
    uow.messages.add(message)
    if message.customer_id is None:
        return
    fields = {
        "customer_id": message.customer_id,
        "campaign_id": message.campaign_id,
        "message_id": message.id,
        "channel": message.channel,
        "variant": message.variant,
    }
    await uow.outbox.publish([CampaignMessageSent(**fields), CampaignMessageDelivered(**fields)])


async def finish_failed(
    uow: CampaignUnitOfWork,
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
    message = await uow.messages.get_message(message_id)
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
    uow.messages.add(message)
