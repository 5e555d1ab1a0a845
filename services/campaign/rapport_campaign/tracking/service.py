"""Opens, clicks, unsubscribes and the attribution of orders to the messages that led to them.

Each takes the unit of work: what the links record (`record_open`, `record_click`,
`unsubscribe`), the unsubscribes' sync run by the worker, and attribution, which the orders'
projection runs on its transaction."""

import re
from datetime import datetime, timedelta
from typing import Any

from rapport_campaign import shared
from rapport_campaign.audience import service as audience_service
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.messaging.models import LINKS, Message
from rapport_campaign.settings import Settings
from rapport_campaign.shared import utc
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_campaign.tracking.tokens import with_utm
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.types import (
    CampaignConversionAttributed,
    CampaignMessageClicked,
    CampaignMessageOpened,
    OrderCompleted,
)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "campaign"


def _event_fields(message: Message) -> dict[str, Any]:
    return {
        "customer_id": message.customer_id,
        "campaign_id": message.campaign_id,
        "message_id": message.id,
        "channel": message.channel,
        "variant": message.variant,
    }


async def record_open(uow: CampaignUnitOfWork, message_id: str) -> None:
    """The first open of a message is recorded and published; later ones change nothing."""
    message = await uow.messages.get_message(message_id)
    if message is None or message.opened_at is not None:
        return
    message.opened_at = utcnow()
    uow.messages.add(message)
    if message.customer_id is not None:
        await uow.outbox.publish([CampaignMessageOpened(**_event_fields(message))])


def message_links(message: Message) -> list[str]:
    """The URLs the message was sent with click tokens for (none before they were kept)."""
    links = (message.context or {}).get(LINKS)
    return [link for link in links if isinstance(link, str)] if isinstance(links, list) else []


async def record_click(uow: CampaignUnitOfWork, message_id: str, url: str) -> str | None:
    """Record a click (and the open it implies); returns the target with UTM parameters.

    None, with nothing recorded, when no such message was sent with that link: a token
    is only as good as the secret that signed it, and the message is the second witness.
    """
    message = await uow.messages.get_message(message_id)
    if message is None or url not in message_links(message):
        return None
    campaign = await uow.campaigns.get_campaign(message.campaign_id)
    now = utcnow()
    if message.opened_at is None:
        await record_open(uow, message_id)
    if message.clicked_at is None:
        message.clicked_at = now
    uow.messages.add(message)
    uow.tracking.add(
        Click(
            message_id=message.id,
            campaign_id=message.campaign_id,
            customer_id=message.customer_id,
            url=url[:2048],
            clicked_at=now,
        ),
    )
    if message.customer_id is not None:
        await uow.outbox.publish([CampaignMessageClicked(**_event_fields(message), url=url)])
    return with_utm(
        url,
        source="rapport",
        medium=message.channel,
        campaign=_slug(campaign.name) if campaign else message.campaign_id,
        content=message.variant,
    )


async def unsubscribe(
    uow: CampaignUnitOfWork, customer_id: str, channel: str, message_id: str | None
) -> bool:
    """Suppress the channel now, stop journeys on it, and queue the revocation for profile."""
    resolved = await uow.audience.resolve(customer_id)
    if resolved is None or channel not in shared.CHANNELS:
        return False
    if await audience_service.suppress_channel(uow, resolved, channel):
        uow.tracking.add(Unsubscribe(customer_id=resolved, channel=channel, message_id=message_id))
        await journey_service.stop_journeys(uow, resolved, channel)
        # Segments test the consent in SQL: what changed above is written first.
        await uow.flush()
        await uow.membership.reevaluate(resolved, {"consent"})
    return True


async def claim_unsynced_unsubscribes(
    uow: CampaignUnitOfWork, lease_s: float, limit: int = 100
) -> list[Unsubscribe]:
    """Unsubscribes profile has not recorded yet, leased to this worker for `lease_s`."""
    now = utcnow()
    return await uow.tracking.claim_unsynced_unsubscribes(
        now, limit, now + timedelta(seconds=lease_s)
    )


async def unsubscribe_synced(
    uow: CampaignUnitOfWork, unsubscribe_id: int, error: str | None
) -> None:
    """Profile recorded the revocation (or cannot: `error`); stop retrying."""
    row = await uow.tracking.get_unsubscribe(unsubscribe_id)
    if row is not None:
        row.synced_at = utcnow()
        row.attempts += 1
        row.last_error = error[:500] if error else None
        uow.tracking.add(row)


async def unsubscribe_failed(uow: CampaignUnitOfWork, unsubscribe_id: int, error: str) -> None:
    """Profile did not answer: try again later, backing off up to an hour."""
    row = await uow.tracking.get_unsubscribe(unsubscribe_id)
    if row is not None:
        row.attempts += 1
        row.last_error = error[:500]
        row.next_attempt_at = utcnow() + timedelta(seconds=min(2**row.attempts, 3600))
        uow.tracking.add(row)


async def attribute_order(
    uow: CampaignUnitOfWork, customer_id: str, event: OrderCompleted, settings: Settings
) -> Conversion | None:
    """Credit the order to a campaign message: its offer code, else a click in the window."""
    order_key = f"{customer_id}:{event.order_id}"[:200]
    if await uow.tracking.conversion_for_order(order_key) is not None:
        return None
    ordered_at = utc(event.occurred_at)
    message: Message | None = None
    touch = "offer_code"
    if event.coupon:
        coded = await uow.messages.message_by_offer_code(event.coupon.upper())
        if coded is not None:
            if coded.redeemed_at is None:
                coded.redeemed_at = ordered_at
                coded.redeemed_order_id = event.order_id[:128]
                uow.messages.add(coded)
            if coded.customer_id == customer_id:
                message = coded
    if message is None:
        message = await _clicked_message(uow, customer_id, ordered_at, settings)
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
    uow.tracking.add(conversion)
    attributed = CampaignConversionAttributed(
        customer_id=customer_id,
        campaign_id=message.campaign_id,
        message_id=message.id,
        order_id=event.order_id,
        revenue=event.revenue,
        currency=event.currency,
        model=settings.attribution_model,
    )
    await uow.outbox.publish([attributed])
    return conversion


async def _clicked_message(
    uow: CampaignUnitOfWork, customer_id: str, ordered_at: datetime, settings: Settings
) -> Message | None:
    """The clicked message credited under the attribution model, within its campaign's window."""
    longest = max(settings.attribution_window_hours, 24 * 365)
    clicks = await uow.tracking.clicks_between(
        customer_id, ordered_at - timedelta(hours=longest), ordered_at
    )
    windows: dict[str, float] = {}
    eligible = []
    for click in clicks:
        if click.campaign_id not in windows:
            campaign = await uow.campaigns.get_campaign(click.campaign_id)
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
    return await uow.messages.get_message(chosen.message_id)
