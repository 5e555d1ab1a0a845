"""The mentions' use cases: ingest a mention (a ticket for a complaint or a question), queue
replies and record their delivery, in the caller's transaction, on its unit of work."""

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta

from rapport_events.base import utcnow
from rapport_events.types import SocialMentionReceived, SocialReplySent
from rapport_events.webhooks import refused_for_good, retry_delay
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
from rapport_support.settings import Settings
from rapport_support.shared import Page, clip
from rapport_support.tickets.models import CommentCreate, TicketCreate
from rapport_support.tickets.service import add_comment, open_ticket
from rapport_support.unit_of_work import SupportUnitOfWork


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


async def _mentioned_model(uow: SupportUnitOfWork, customer_id: str, body: str) -> str | None:
    lowered = body.lower()
    for product in await uow.products.products_of(customer_id):
        if product.product_model and product.product_model.lower() in lowered:
            return product.product_model
    return None


async def ingest_mention(
    uow: SupportUnitOfWork, settings: Settings, data: MentionCreate, now: datetime | None = None
) -> tuple[SupportMention, bool]:
    """Store a mention, link its handle, score its sentiment, open a ticket when it needs one.

    Returns the mention and whether it is new; the same `external_id` twice is stored once.
    """
    now = now or utcnow()
    if data.external_id is not None:
        existing = await uow.mentions.mention_by_external_id(data.platform, data.external_id)
        if existing is not None:
            return existing, False
    key = handle_key(data.handle)[:256]
    customer_id = await uow.customers.handle_owner(data.platform, key)
    if customer_id is not None:
        customer_id = await uow.customers.resolve(customer_id)  # None if erased
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
    uow.mentions.add(mention)
    await uow.flush()
    received = SocialMentionReceived(
        customer_id=mention.subject_id,
        occurred_at=posted_at,
        mention_id=mention.id,
        platform=mention.platform,
        handle=mention.handle,
        text=mention.text,
        url=mention.url,
        sentiment=score.label,
        linked=customer_id is not None,
    )
    await uow.outbox.publish([received])
    if kind in ("complaint", "question"):
        strongly_negative = score.compound <= -0.5
        ticket = await open_ticket(
            uow,
            settings,
            TicketCreate(
                customer_id=mention.subject_id,
                subject=_mention_subject_line(data.platform, data.handle, kind, data.text),
                description=f"{data.text}\n\n{data.url or ''}".strip(),
                priority="high" if strongly_negative else "normal",
                category=kind,
                channel="social",
                product_model=(
                    await _mentioned_model(uow, customer_id, data.text) if customer_id else None
                ),
            ),
            mention_id=mention.id,
            now=now,
        )
        mention.ticket_id, mention.status = ticket.id, "ticketed"
        uow.mentions.add(mention)
        await uow.flush()
    return mention, True


async def _get_mention(uow: SupportUnitOfWork, mention_id: str) -> SupportMention:
    mention = await uow.mentions.get_mention(mention_id)
    if mention is None:
        raise NotFound(f"no mention {mention_id}")
    return mention


async def list_mentions(
    uow: SupportUnitOfWork, where: store.MentionFilter, limit: int, cursor: str | None
) -> Page[MentionPublic]:
    """Mentions for PR staff, newest first, one page at a time."""
    rows, next_cursor = await uow.mentions.list_mentions(where, limit, cursor)
    return Page(items=[MentionPublic.model_validate(m) for m in rows], next_cursor=next_cursor)


async def _reply_views(
    uow: SupportUnitOfWork, replies: list[SupportMentionReply]
) -> list[ReplyPublic]:
    attempts: dict[str, list[SupportReplyAttempt]] = defaultdict(list)
    for attempt in await uow.mentions.attempts_for([reply.id for reply in replies]):
        attempts[attempt.reply_id].append(attempt)
    views = []
    for reply in replies:
        view = ReplyPublic.model_validate(reply)
        view.delivery = [AttemptPublic.model_validate(a) for a in attempts[reply.id]]
        views.append(view)
    return views


async def mention_detail(uow: SupportUnitOfWork, mention_id: str) -> MentionDetail:
    """A mention with its replies and their delivery attempts."""
    mention = await _get_mention(uow, mention_id)
    replies = await _reply_views(uow, await uow.mentions.replies_of(mention.id))
    return MentionDetail(**MentionPublic.model_validate(mention).model_dump(), replies=replies)


async def update_mention(
    uow: SupportUnitOfWork, mention_id: str, update: MentionUpdate
) -> SupportMention:
    """PR staff set a mention's status (for example closed when no answer is needed)."""
    mention = await _get_mention(uow, mention_id)
    mention.status = update.status
    uow.mentions.add(mention)
    await uow.flush()
    return mention


async def reply_to_mention(
    uow: SupportUnitOfWork,
    settings: Settings,
    mention_id: str,
    data: ReplyCreate,
    now: datetime | None = None,
) -> ReplyPublic:
    """Queue a reply for the platform's webhook; it also answers the mention's ticket."""
    now = now or utcnow()
    mention = await _get_mention(uow, mention_id)
    if settings.webhook_for(mention.platform) is None:
        raise InvalidRequest(f"no reply webhook is configured for platform {mention.platform}")
    reply = SupportMentionReply(
        mention_id=mention.id,
        text=data.text,
        author=data.author,
        next_attempt_at=now,
        created_at=now,
    )
    uow.mentions.add(reply)
    if mention.ticket_id is not None:
        ticket = await uow.tickets.get_ticket(mention.ticket_id)
        if ticket is not None and ticket.status != "closed":
            await add_comment(
                uow,
                ticket.id,
                CommentCreate(
                    body=f"Replied on {mention.platform}: {data.text}", author=data.author
                ),
                now,
            )
    await uow.flush()
    return ReplyPublic.model_validate(reply)


async def due_replies(
    uow: SupportUnitOfWork, settings: Settings, now: datetime | None = None, limit: int = 20
) -> list[tuple[SupportMentionReply, SupportMention]]:
    """Claim the replies due for an attempt, so no other worker sends them meanwhile."""
    now = now or utcnow()
    lease = now + timedelta(seconds=settings.webhook_timeout_s * 2 + 5)
    claimed = []
    for reply in await uow.mentions.claim_due_replies(now, limit, lease):
        mention = await uow.mentions.get_mention(reply.mention_id)
        if mention is not None:
            claimed.append((reply, mention))
    return claimed


async def record_delivery(
    uow: SupportUnitOfWork,
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
    reply = await uow.mentions.get_reply(reply_id)
    if reply is None:  # erased meanwhile
        return None
    uow.mentions.add(
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
        mention = await uow.mentions.get_mention(reply.mention_id)
        if mention is not None:
            if mention.status != "closed":
                mention.status = "replied"
                uow.mentions.add(mention)
            # On the customer's timeline (profile), beside the mention it answers.
            sent = SocialReplySent(
                customer_id=mention.customer_id or mention.subject_id,
                occurred_at=now,
                mention_id=mention.id,
                reply_id=reply.id,
                platform=mention.platform,
                handle=mention.handle,
                text=reply.text,
                author=reply.author,
            )
            await uow.outbox.publish([sent])
    else:
        reply.last_error = clip(error or f"HTTP {status_code}", 2_000)
        if reply.attempts >= settings.webhook_max_attempts or refused_for_good(status_code):
            reply.status, reply.next_attempt_at = "failed", None
        else:
            reply.next_attempt_at = now + retry_delay(
                reply.attempts, settings.webhook_backoff_s, settings.webhook_max_backoff_s
            )
    uow.mentions.add(reply)
    await uow.flush()
    return reply
