"""The mentions' use cases: ingest a mention (a ticket for a complaint or a question), queue
replies and record their delivery, in the caller's transaction."""

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.types import SocialMentionReceived, SocialReplySent
from rapport_events.webhooks import refused_for_good, retry_delay
from rapport_support.customers import service as customer_service
from rapport_support.customers import store as customer_store
from rapport_support.customers.models import handle_key
from rapport_support.errors import InvalidRequest, NotFound
from rapport_support.mentions import sentiment, store
from rapport_support.mentions.models import (
    AttemptPublic,
    MentionCreate,
    MentionDetail,
    MentionPublic,
    MentionUpdate,
    ReplyCreate,
    ReplyPublic,
    SupportMention,
    SupportMentionReply,
    SupportReplyAttempt,
)
from rapport_support.products import store as product_store
from rapport_support.settings import Settings
from rapport_support.shared import Page, clip, publish
from rapport_support.tickets.models import CommentCreate, TicketCreate
from rapport_support.tickets.service import add_comment, open_ticket
from rapport_support.unit_of_work import SqlSupportUnitOfWork


def social_subject(platform: str, key: str) -> str:
    """The log's customer id of an unknown handle: readable when it fits, else hashed."""
    readable = f"social:{platform}:{key}"
    if len(readable) <= 64:
        return readable
    return "social:" + hashlib.sha256(f"{platform}:{key}".encode()).hexdigest()[:40]


def _mention_subject_line(platform: str, handle: str, kind: str, body: str) -> str:
    snippet = " ".join(body.split())
    line = f"{platform.capitalize()} {kind} from @{handle.lstrip('@')}: {snippet}"
    return line if len(line) <= 200 else line[:197] + "..."


async def _mentioned_model(session: AsyncSession, customer_id: str, body: str) -> str | None:
    lowered = body.lower()
    for product in await product_store.products_of(session, customer_id):
        if product.product_model and product.product_model.lower() in lowered:
            return product.product_model
    return None


async def ingest_mention(
    session: AsyncSession, settings: Settings, data: MentionCreate, now: datetime | None = None
) -> tuple[SupportMention, bool]:
    """Store a mention, link its handle, score its sentiment, open a ticket when it needs one.

    Returns the mention and whether it is new; the same `external_id` twice is stored once.
    """
    now = now or utcnow()
    if data.external_id is not None:
        existing = await store.mention_by_external_id(session, data.platform, data.external_id)
        if existing is not None:
            return existing, False
    key = handle_key(data.handle)[:256]
    owner = await customer_store.get_handle(session, data.platform, key)
    customer_id = owner.customer_id if owner is not None else None
    if customer_id is not None:
        customer_id = await customer_service.resolve(session, customer_id)  # None if erased
    score = sentiment.sentiment(data.text)
    kind = sentiment.mention_kind(data.text, score.label)
    posted_at = data.time or now
    mention = SupportMention(
        platform=data.platform,
        handle=data.handle,
        handle_key=key,
        external_id=data.external_id,
        text=data.text,
        url=data.url,
        posted_at=posted_at,
        received_at=now,
        customer_id=customer_id,
        subject_id=customer_id or social_subject(data.platform, key),
        sentiment=score.label,
        sentiment_score=round(score.compound, 4),
        kind=kind,
    )
    store.add(session, mention)
    await session.flush()
    publish(
        session,
        settings,
        SocialMentionReceived(
            customer_id=mention.subject_id,
            occurred_at=posted_at,
            mention_id=mention.id,
            platform=mention.platform,
            handle=mention.handle,
            text=mention.text,
            url=mention.url,
            sentiment=score.label,
            linked=customer_id is not None,
        ),
    )
    if kind in ("complaint", "question"):
        strongly_negative = score.compound <= -0.5
        ticket = await open_ticket(
            SqlSupportUnitOfWork(session, settings),
            settings,
            TicketCreate(
                customer_id=mention.subject_id,
                subject=_mention_subject_line(data.platform, data.handle, kind, data.text),
                description=f"{data.text}\n\n{data.url or ''}".strip(),
                priority="high" if strongly_negative else "normal",
                category=kind,
                channel="social",
                product_model=(
                    await _mentioned_model(session, customer_id, data.text) if customer_id else None
                ),
            ),
            mention_id=mention.id,
            now=now,
        )
        mention.ticket_id, mention.status = ticket.id, "ticketed"
        store.add(session, mention)
        await session.flush()
    return mention, True


async def _get_mention(session: AsyncSession, mention_id: str) -> SupportMention:
    mention = await store.get_mention(session, mention_id)
    if mention is None:
        raise NotFound(f"no mention {mention_id}")
    return mention


async def list_mentions(
    session: AsyncSession, where: store.MentionFilter, limit: int, cursor: str | None
) -> Page[MentionPublic]:
    """Mentions for PR staff, newest first, one page at a time."""
    rows, next_cursor = await store.list_mentions(session, where, limit, cursor)
    return Page(items=[MentionPublic.model_validate(m) for m in rows], next_cursor=next_cursor)


async def _reply_views(
    session: AsyncSession, replies: list[SupportMentionReply]
) -> list[ReplyPublic]:
    attempts: dict[str, list[SupportReplyAttempt]] = defaultdict(list)
    for attempt in await store.attempts_for(session, [reply.id for reply in replies]):
        attempts[attempt.reply_id].append(attempt)
    views = []
    for reply in replies:
        view = ReplyPublic.model_validate(reply)
        view.delivery = [AttemptPublic.model_validate(a) for a in attempts[reply.id]]
        views.append(view)
    return views


async def mention_detail(session: AsyncSession, mention_id: str) -> MentionDetail:
    """A mention with its replies and their delivery attempts."""
    mention = await _get_mention(session, mention_id)
    replies = await _reply_views(session, await store.replies_of(session, mention.id))
    return MentionDetail(**MentionPublic.model_validate(mention).model_dump(), replies=replies)


async def update_mention(
    session: AsyncSession, mention_id: str, update: MentionUpdate
) -> SupportMention:
    """PR staff set a mention's status (for example closed when no answer is needed)."""
    mention = await _get_mention(session, mention_id)
    mention.status = update.status
    store.add(session, mention)
    await session.flush()
    return mention


async def reply_to_mention(
    session: AsyncSession,
    settings: Settings,
    mention_id: str,
    data: ReplyCreate,
    now: datetime | None = None,
) -> ReplyPublic:
    """Queue a reply for the platform's webhook; it also answers the mention's ticket."""
    now = now or utcnow()
    mention = await _get_mention(session, mention_id)
    if settings.webhook_for(mention.platform) is None:
        raise InvalidRequest(f"no reply webhook is configured for platform {mention.platform}")
    reply = SupportMentionReply(
        mention_id=mention.id,
        text=data.text,
        author=data.author,
        next_attempt_at=now,
        created_at=now,
    )
    store.add(session, reply)
    if mention.ticket_id is not None:
        tickets = SqlSupportUnitOfWork(session, settings)
        ticket = await tickets.tickets.get_ticket(mention.ticket_id)
        if ticket is not None and ticket.status != "closed":
            await add_comment(
                tickets,
                ticket.id,
                CommentCreate(
                    body=f"Replied on {mention.platform}: {data.text}", author=data.author
                ),
                now,
            )
    await session.flush()
    return ReplyPublic.model_validate(reply)


async def due_replies(
    session: AsyncSession, settings: Settings, now: datetime | None = None, limit: int = 20
) -> list[tuple[SupportMentionReply, SupportMention]]:
    """Claim the replies due for an attempt, so no other worker sends them meanwhile."""
    now = now or utcnow()
    lease = now + timedelta(seconds=settings.webhook_timeout_s * 2 + 5)
    claimed = []
    for reply in await store.claim_due_replies(session, now, limit, lease):
        mention = await store.get_mention(session, reply.mention_id)
        if mention is not None:
            claimed.append((reply, mention))
    return claimed


async def record_delivery(
    session: AsyncSession,
    settings: Settings,
    reply_id: str,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    now: datetime | None = None,
) -> SupportMentionReply | None:
    """Record one attempt; a 2xx marks the reply sent, else it waits for the next try or fails."""
    now = now or utcnow()
    reply = await store.get_reply(session, reply_id)
    if reply is None:  # erased meanwhile
        return None
    store.add(
        session,
        SupportReplyAttempt(
            reply_id=reply.id,
            attempt=reply.attempts,
            attempted_at=now,
            status_code=status_code,
            error=clip(error, 2_000),
            duration_ms=round(duration_ms, 2),
        ),
    )
    if status_code is not None and 200 <= status_code < 300:
        reply.status, reply.sent_at, reply.next_attempt_at, reply.last_error = (
            "sent",
            now,
            None,
            None,
        )
        mention = await store.get_mention(session, reply.mention_id)
        if mention is not None:
            if mention.status != "closed":
                mention.status = "replied"
                store.add(session, mention)
            # On the customer's timeline (profile), beside the mention it answers.
            publish(
                session,
                settings,
                SocialReplySent(
                    customer_id=mention.customer_id or mention.subject_id,
                    occurred_at=now,
                    mention_id=mention.id,
                    reply_id=reply.id,
                    platform=mention.platform,
                    handle=mention.handle,
                    text=reply.text,
                    author=reply.author,
                ),
            )
    else:
        reply.last_error = clip(error or f"HTTP {status_code}", 2_000)
        if reply.attempts >= settings.webhook_max_attempts or refused_for_good(status_code):
            reply.status, reply.next_attempt_at = "failed", None
        else:
            reply.next_attempt_at = now + retry_delay(
                reply.attempts, settings.webhook_backoff_s, settings.webhook_max_backoff_s
            )
    store.add(session, reply)
    await session.flush()
    return reply
