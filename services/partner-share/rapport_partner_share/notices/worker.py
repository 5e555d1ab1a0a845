"""The notifier: delivers signed deletion notices to partners' webhooks, with retries.

It runs outside any request or event's transaction and polls the database, so a notice
queued by a transaction that committed is never lost to a crash: it is simply picked up on
the next poll, by this or another replica.
"""

import asyncio
import logging
from datetime import timedelta

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from rapport_events.db import SessionFactory, transaction
from rapport_events.webhooks import signed_headers
from rapport_partner_share.notices import service as notices
from rapport_partner_share.settings import Settings
from rapport_partner_share.shared import USER_AGENT
from rapport_partner_share.unit_of_work import SqlPartnerShareUnitOfWork

log = logging.getLogger(__name__)


async def deliver_due(
    sessions: SessionFactory, http: httpx.AsyncClient, settings: Settings, limit: int = 20
) -> int:
    """Send the due deletion notices, each signed with its partner's secret."""
    lease = timedelta(seconds=settings.webhook_timeout_s * 2 + 5)
    with suppress_instrumentation():
        async with transaction(sessions) as session:
            uow = SqlPartnerShareUnitOfWork(session, settings.kafka.topic)
            deliveries = await notices.claim_deliveries(uow, lease, limit)
    await asyncio.gather(*(_deliver(sessions, http, settings, d) for d in deliveries))
    return len(deliveries)


async def _deliver(
    sessions: SessionFactory,
    http: httpx.AsyncClient,
    settings: Settings,
    delivery: notices.Delivery,
) -> None:
    status: int | None = None
    error: str | None = None
    try:
        response = await http.post(
            delivery.url,
            content=delivery.body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **signed_headers(delivery.secret, delivery.body, delivery.notification_id),
                "X-Rapport-Notification-Id": delivery.notification_id,
            },
            timeout=settings.webhook_timeout_s,
        )
        status = response.status_code
        if not 200 <= status < 300:
            error = f"webhook answered {status}"
    except httpx.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"
    if error:
        log.warning("notice %s not delivered: %s", delivery.notification_id, error)
    async with transaction(sessions) as session:
        await notices.record_delivery(
            SqlPartnerShareUnitOfWork(session, settings.kafka.topic),
            delivery,
            status=status,
            error=error,
            max_attempts=settings.webhook_max_attempts,
            backoff=timedelta(seconds=settings.webhook_backoff_s),
            max_backoff=timedelta(seconds=settings.webhook_max_backoff_s),
        )
