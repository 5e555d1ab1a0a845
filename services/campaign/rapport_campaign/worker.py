"""Campaign's background work: sending messages and everything that runs on the clock.

Every timer lives in the database (scheduled campaigns, journey timers, A/B decision
times, retries, unsubscribe syncs), so a restart loses nothing: the next tick finds
what fell due while the service was down.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import httpx

from rapport_campaign import shared
from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.messaging import delivery
from rapport_campaign.messaging import service as messaging_service
from rapport_campaign.segments import service as segment_service
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.http import peer_url
from rapport_events.supervisor import Periodic
from rapport_events.tracing import background_span, untraced

log = logging.getLogger(__name__)
# How long profile has to record an unsubscribe before the call is given up and retried.
UNSUBSCRIBE_TIMEOUT_S = 10.0
# Unsubscribes taken per tick; they are sent one after another, all within one lease.
UNSUBSCRIBE_BATCH = 10


class Worker:
    """Sends due messages and runs the scheduler, each in its own task."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        settings: Settings,
        tokens: Tokens,
        http: httpx.AsyncClient,
        email: delivery.EmailTransport | None = None,
        webhooks: delivery.WebhookTransport | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._tokens = tokens
        self._http = http
        self._email = email or delivery.EmailTransport(settings)
        self._webhooks = webhooks or delivery.WebhookTransport(settings, http)
        self._recommender = messaging_service.Recommender()
        interval = settings.worker_interval_s
        policy = settings.kafka.restart_policy()
        self._sender = Periodic("campaign-sender", self.send_once, interval, policy=policy)
        self._scheduler = Periodic("campaign-scheduler", self.tick_once, interval, policy=policy)
        self.sent = 0

    def start(self) -> tuple[Periodic, Periodic]:
        """Start sending and scheduling under supervision; returns both loops."""
        return self._sender.start(), self._scheduler.start()

    async def stop(self) -> None:
        await self._sender.stop()
        await self._scheduler.stop()

    def wake(self) -> None:
        """Look for due messages now rather than at the next tick."""
        self._sender.wake()

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[SqlCampaignUnitOfWork]:
        """One transaction, its events bound for the configured log."""
        async with transaction(self._sessions) as session:
            yield SqlCampaignUnitOfWork(session, self._settings.kafka.topic)

    # --- sending ------------------------------------------------------------------------------

    async def send_once(self) -> int:
        """Send one batch of due messages; returns how many were claimed."""
        with untraced():
            async with self._unit_of_work() as uow:
                claimed = await messaging_service.claim_due(uow, self._settings)
        if not claimed:
            return 0
        # One customer's messages go one after the other, so the frequency cap sees each.
        by_customer: dict[str | None, list[tuple[str, datetime]]] = defaultdict(list)
        for message in claimed:
            by_customer[message.customer_id].append((message.id, shared.utc(message.due_at)))
        limit = asyncio.Semaphore(self._settings.send_concurrency)

        async def send_all(leased: list[tuple[str, datetime]]) -> None:
            async with limit:
                for message_id, lease in leased:
                    with background_span("campaign send", **{"rapport.message.id": message_id}):
                        await self._send(message_id, lease)

        await asyncio.gather(*(send_all(ids) for ids in by_customer.values()))
        return len(claimed)

    async def _send(self, message_id: str, lease: datetime) -> None:
        try:
            async with self._unit_of_work() as uow:
                outgoing = await messaging_service.prepare(
                    uow,
                    message_id,
                    self._settings,
                    self._tokens,
                    self._recommender,
                    lease=lease,
                )
        except Exception:
            # Left claimed: the lease runs out and the message is tried again.
            log.exception("preparing message %s failed", message_id)
            return
        if outgoing is None:
            return
        try:
            await self._deliver(outgoing)
        except delivery.DeliveryError as error:
            log.warning("message %s not delivered: %s", message_id, error)
            async with self._unit_of_work() as uow:
                await messaging_service.finish_failed(
                    uow,
                    message_id,
                    str(error),
                    error.permanent,
                    self._settings,
                    lease=outgoing.lease,
                )
            return
        async with self._unit_of_work() as uow:
            await messaging_service.finish_sent(uow, outgoing)
        self.sent += 1

    async def _deliver(self, outgoing: messaging_service.Outgoing) -> None:
        rendered = outgoing.rendered
        if outgoing.channel == "email":
            await self._email.send(
                delivery.build_email(
                    sender=self._settings.mail_from,
                    to=outgoing.address,
                    message_id=outgoing.message_id,
                    rendered=rendered,
                    unsubscribe_url=outgoing.unsubscribe_url,
                    open_url=outgoing.open_url,
                )
            )
            return
        await self._webhooks.send(
            outgoing.channel,
            {
                "message_id": outgoing.message_id,
                "campaign_id": outgoing.campaign_id,
                "customer_id": outgoing.customer_id,
                "channel": outgoing.channel,
                "variant": outgoing.variant,
                "to": outgoing.address,
                "subject": rendered.subject,
                "text": delivery.with_unsubscribe_text(rendered.text, outgoing.unsubscribe_url),
                "unsubscribe_url": outgoing.unsubscribe_url,
            },
        )

    # --- the clock ----------------------------------------------------------------------------

    async def tick_once(self) -> int:
        """Everything that fell due; returns 0 so the loop sleeps until the next tick."""
        now = utcnow()
        steps: list[tuple[str, Callable[..., Awaitable[int]]]] = [
            ("launch", campaign_service.launch_due),
            ("decide", campaign_service.decide_winners),
            ("journeys", journey_service.fire_due_journeys),
            ("complete", campaign_service.complete_finished),
        ]
        for name, step in steps:
            try:
                # Each step looks for what fell due and acts on it in one transaction; it
                # runs every tick, nearly always finding nothing: not a trace each time.
                with untraced():
                    async with self._unit_of_work() as uow:
                        if await step(uow, now):
                            self.wake()
            except Exception:
                log.exception("scheduler step %s failed", name)
        await self.refresh_segments()
        await self.sync_unsubscribes()
        return 0

    async def refresh_segments(self) -> int:
        """Reconcile new segments once, and recompute clock-dependent ones when due."""
        interval = timedelta(seconds=self._settings.segment_refresh_interval_s)
        with untraced():
            async with self._unit_of_work() as uow:
                due = [s.id for s in await uow.segments.segments_to_refresh(utcnow() - interval)]
        for segment_id in due:
            try:
                with background_span(
                    "campaign refresh segment", **{"rapport.segment.id": segment_id}
                ):
                    async with self._unit_of_work() as uow:
                        segment = await uow.segments.get_segment(segment_id)
                        if segment is not None:
                            await segment_service.recompute_segment(uow, segment)
            except Exception:
                log.exception("refreshing segment %s failed", segment_id)
        return len(due)

    async def sync_unsubscribes(self) -> int:
        """Tell profile about unsubscribe clicks; it owns consents and publishes the revocation."""
        # Leased while profile is asked, so another replica does not ask it too: the lease
        # outlasts the whole batch, each call taking up to its timeout.
        lease_s = UNSUBSCRIBE_TIMEOUT_S * UNSUBSCRIBE_BATCH + 5
        with untraced():
            async with self._unit_of_work() as uow:
                pending = [
                    (row.id, row.customer_id, row.channel)
                    for row in await tracking_service.claim_unsynced_unsubscribes(
                        uow, lease_s, UNSUBSCRIBE_BATCH
                    )
                ]
        for row_id, customer_id, channel in pending:
            assert row_id is not None
            with background_span(
                "campaign sync unsubscribe", **{"rapport.customer.id": customer_id}
            ):
                await self._sync_unsubscribe(row_id, customer_id, channel)
        return len(pending)

    async def _sync_unsubscribe(self, row_id: int, customer_id: str, channel: str) -> None:
        error = await self._revoke_in_profile(customer_id, channel)
        async with self._unit_of_work() as uow:
            if error is None or not error.retry:
                await tracking_service.unsubscribe_synced(
                    uow, row_id, error.message if error else None
                )
            else:
                await tracking_service.unsubscribe_failed(uow, row_id, error.message)

    async def _revoke_in_profile(self, customer_id: str, channel: str) -> "SyncError | None":
        url = peer_url(self._settings.profile_url, "customers", customer_id, "consents")
        try:
            response = await self._http.put(
                url,
                json={
                    "purpose": "marketing",
                    "channel": channel,
                    "granted": False,
                    "source": "unsubscribe_link",
                },
                headers={"Authorization": f"Bearer {self._settings.profile_token}"},
                timeout=UNSUBSCRIBE_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            return SyncError(f"profile unreachable: {error!r}", retry=True)
        if response.is_success:
            return None
        # A customer profile no longer knows (merged away, erased) will not come back.
        retry = response.status_code not in (404, 409, 410, 422)
        return SyncError(f"profile answered {response.status_code}", retry=retry)


class SyncError:
    def __init__(self, message: str, *, retry: bool) -> None:
        self.message = message
        self.retry = retry
