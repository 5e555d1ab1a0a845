"""Deletion notices to partners (GDPR Art. 19): queued, signed, delivered, acknowledged.

A notice is queued in the transaction that deleted the data; the notifier worker
delivers it to the partner's webhook. A 2xx reply is the partner's
acknowledgement; partners without a webhook read their notices over the API and
acknowledge them with POST /partner/v1/acknowledgements.

The use cases take the unit of work; the merge and the erasure build theirs with `notice`
and queue them on their session.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rapport_events.base import utcnow
from rapport_events.webhooks import retry_delay
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import NotificationNotFound
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.shared import iso
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork


def notice(
    partner: Partner,
    consent: PartnerConsent,
    kind: str,
    removed: Iterable[str],
    remaining: Iterable[str],
    now: datetime,
    *,
    merged_into: str | None = None,
    erased: bool = False,
) -> Notification:
    """The signed notice telling the partner what to delete, for the caller to store."""
    notification = Notification(
        partner_id=partner.id,
        # An erased customer's notice keeps only the partner's ref: it must still go out.
        customer_id=None if erased else consent.customer_id,
        partner_ref=consent.ref,
        kind=kind,
        body="",
        created_at=now,
        next_attempt_at=now if partner.webhook_url else None,
    )
    payload: dict[str, Any] = {
        "id": notification.id,
        "type": kind,
        "partner_id": partner.id,
        "ref": consent.ref,
        "delete_slices": sorted(removed),
        "remaining_slices": sorted(remaining),
        "occurred_at": iso(now),
    }
    if kind == "customer.merged":
        payload["merged_into"] = merged_into
    notification.body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return notification


async def partner_notifications(
    uow: PartnerShareUnitOfWork, partner: Partner, *, pending_only: bool, limit: int
) -> list[Notification]:
    """The deletion notices sent to a partner (for partners that poll instead of a webhook)."""
    return await uow.notices.list_notifications(
        partner_id=partner.id, pending_only=pending_only, limit=limit
    )


async def acknowledge(
    uow: PartnerShareUnitOfWork, partner: Partner, notification_id: str, *, via: str = "api"
) -> Notification:
    """Record that the partner acted on a notice; the first acknowledgement wins."""
    notification = await uow.notices.get_notification(notification_id)
    if notification is None or notification.partner_id != partner.id:
        raise NotificationNotFound(notification_id)
    if notification.acknowledged_at is None:
        notification.acknowledged_at = utcnow()
        notification.acknowledged_via = via
        uow.notices.add(notification)
    return notification


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    url: str
    secret: str
    body: bytes
    attempts: int


async def claim_deliveries(
    uow: PartnerShareUnitOfWork, lease: timedelta, limit: int
) -> list[Delivery]:
    """Due webhook deliveries, each leased to this worker for `lease`."""
    now = utcnow()
    claimed = []
    for notification, partner in await uow.notices.due_notifications(now, limit):
        assert notification.next_attempt_at is not None and partner.webhook_url is not None
        if await uow.notices.claim_notification(
            notification.id, notification.next_attempt_at, now + lease
        ):
            claimed.append(
                Delivery(
                    notification_id=notification.id,
                    url=partner.webhook_url,
                    secret=partner.webhook_secret,
                    body=notification.body.encode(),
                    attempts=notification.attempts,
                )
            )
    return claimed


async def record_delivery(
    uow: PartnerShareUnitOfWork,
    delivery: Delivery,
    *,
    status: int | None,
    error: str | None,
    max_attempts: int,
    backoff: timedelta,
    max_backoff: timedelta,
) -> None:
    """A 2xx is the partner's acknowledgement; anything else is retried with backoff."""
    notification = await uow.notices.get_notification(delivery.notification_id)
    if notification is None:
        return
    now = utcnow()
    notification.attempts += 1
    notification.last_status = status
    notification.last_error = error[:500] if error else None
    if status is not None and 200 <= status < 300:
        notification.delivered_at = now
        notification.next_attempt_at = None
        if notification.acknowledged_at is None:
            notification.acknowledged_at = now
            notification.acknowledged_via = "webhook"
    elif notification.attempts >= max_attempts:
        notification.next_attempt_at = None  # given up: it stays pending for the API
    else:
        delay = retry_delay(
            notification.attempts, backoff.total_seconds(), max_backoff.total_seconds()
        )
        notification.next_attempt_at = now + delay
    uow.notices.add(notification)


async def list_notifications(
    uow: PartnerShareUnitOfWork,
    *,
    partner_id: str | None,
    customer_id: str | None,
    pending_only: bool,
    limit: int,
) -> list[Notification]:
    """Deletion notices, their deliveries and acknowledgements (admin)."""
    return await uow.notices.list_notifications(
        partner_id=partner_id,
        customer_id=customer_id,
        pending_only=pending_only,
        limit=limit,
    )
