"""The reply dispatcher: delivers queued replies to the platforms' webhooks, run in the
lifespan."""

import asyncio

import httpx

from rapport_events.db import SessionFactory, transaction
from rapport_events.supervisor import Periodic
from rapport_events.tracing import background_span, untraced
from rapport_support.mentions import service, webhooks
from rapport_support.mentions.models import SupportMention, SupportMentionReply
from rapport_support.settings import Settings
from rapport_support.unit_of_work import SqlSupportUnitOfWork


class ReplyDispatcher(Periodic):
    """Delivers queued replies to the platforms' webhooks, retrying with backoff."""

    def __init__(
        self, sessions: SessionFactory, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        super().__init__(
            "support-reply-dispatcher",
            self.deliver_due,
            settings.reply_poll_interval_s,
            policy=settings.kafka.restart_policy(),
            repeat_while_busy=False,
        )
        self._sessions = sessions
        self._settings = settings
        self._client = client

    async def deliver_due(self) -> int:
        """Attempt every reply that is due; returns how many were attempted."""
        with untraced():
            async with transaction(self._sessions) as session:
                uow = SqlSupportUnitOfWork(session, self._settings)
                claimed = await service.due_replies(uow, self._settings)
        # Sends happen outside any transaction: a slow platform must not hold database locks.
        await asyncio.gather(*(self._deliver(reply, mention) for reply, mention in claimed))
        return len(claimed)

    async def _deliver(self, reply: SupportMentionReply, mention: SupportMention) -> None:
        with background_span("support deliver reply", **{"rapport.reply.id": str(reply.id)}):
            outcome = await self._attempt(reply, mention)
            async with transaction(self._sessions) as session:
                await service.record_delivery(
                    SqlSupportUnitOfWork(session, self._settings),
                    self._settings,
                    reply.id,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )

    async def _attempt(
        self, reply: SupportMentionReply, mention: SupportMention
    ) -> webhooks.Outcome:
        hook = self._settings.webhook_for(mention.platform)
        if hook is None:
            return webhooks.Outcome(None, f"no webhook for platform {mention.platform}", 0.0)
        return await webhooks.post_reply(
            self._client, hook, reply, mention, self._settings.webhook_timeout_s
        )
