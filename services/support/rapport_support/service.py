"""Support's use cases: each writes its rows and outbox events in the caller's transaction."""

import asyncio
import hashlib
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import errors, outbox
from rapport_events.base import Event, utcnow
from rapport_events.types import (
    Priority,
    SocialMentionReceived,
    SocialReplySent,
    TicketOpened,
    TicketRated,
    TicketResolved,
    TicketSlaBreached,
    TicketUpdated,
)
from rapport_events.webhooks import refused_for_good, retry_delay
from rapport_support import store, text
from rapport_support.models import (
    OPEN_STATUSES,
    PRIORITIES,
    AttemptPublic,
    BreachPublic,
    CategoryIssues,
    CommentCreate,
    CommentPublic,
    ConsentPublic,
    CustomerExport,
    CustomerSummary,
    KnownIssues,
    LinkCreate,
    LinkPublic,
    MentionCreate,
    MentionDetail,
    MentionPublic,
    MentionSummary,
    MentionUpdate,
    MergeRequest,
    Page,
    ProductPublic,
    Queue,
    QueueItem,
    RatingCreate,
    ReplyCreate,
    ReplyPublic,
    ResolutionCount,
    SimilarTicket,
    SlaPolicyPublic,
    SlaPolicyUpdate,
    SupportContext,
    SupportMention,
    SupportMentionReply,
    SupportReplyAttempt,
    SupportSlaBreach,
    SupportSlaPolicy,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
    TicketCreate,
    TicketDetail,
    TicketPublic,
    TicketSummary,
    TicketUpdate,
    aware,
    handle_key,
    model_key,
)
from rapport_support.settings import Settings

CONTEXT_MENTIONS = 20
TOP_RESOLUTIONS = 3
UNCATEGORISED = "uncategorised"
PRIORITY_RANK = {priority: rank for rank, priority in enumerate(PRIORITIES)}


class NotFound(errors.NotFound):
    """No such customer, ticket or mention."""


class CustomerNotFound(NotFound):
    """Support has not heard of a customer with that id."""

    def message(self) -> str:
        return f"no customer {self}"


class Conflict(errors.Conflict):
    """The request contradicts the stored state (a closed ticket, an erased customer...)."""


class InvalidRequest(errors.InvalidRequest):
    """The request is well-formed but asks for something that cannot be done."""


def _source(settings: Settings) -> str:
    return f"/services/{settings.service_name}"


def _publish(session: AsyncSession, settings: Settings, event: Event) -> None:
    outbox.add(session, event, source=_source(settings), topic=settings.kafka.topic)


def _clip(value: str | None, length: int) -> str | None:
    # Any producer may write to the log; an over-long value must not dead-letter the event.
    return value[:length] if value is not None else None


# --- support context and export ------------------------------------------------------------


def _product_view(product: Any, today: date) -> ProductPublic:
    view = ProductPublic.model_validate(product)
    view.under_warranty = product.warranty_ends_on >= today
    return view


async def get_support_context(
    session: AsyncSession, customer_id: str, now: datetime | None = None
) -> SupportContext:
    """The customer, the products they own and their earlier tickets, or CustomerNotFound."""
    now = now or utcnow()
    rows = await store.context_rows(session, customer_id, CONTEXT_MENTIONS)
    if rows.customer is None:
        # Merges and erasure delete the row, so only a missing one needs these two lookups.
        current = await store.current_id(session, customer_id)
        if await store.is_erased(session, current):
            raise CustomerNotFound(current)
        if current != customer_id:
            customer_id = current
            rows = await store.context_rows(session, customer_id, CONTEXT_MENTIONS)
    if rows.customer is None and not rows.products and not rows.tickets:
        raise CustomerNotFound(customer_id)
    summary = None
    if rows.customer is not None:
        summary = CustomerSummary.model_validate(rows.customer)
        summary.social_handles = {handle.platform: handle.handle for handle in rows.handles}
        summary.consents = [ConsentPublic.model_validate(consent) for consent in rows.consents]
    return SupportContext(
        customer_id=customer_id,
        customer=summary,
        products=[_product_view(product, now.date()) for product in rows.products],
        tickets=[TicketSummary.model_validate(ticket) for ticket in rows.tickets],
        open_tickets=sum(ticket.status in OPEN_STATUSES for ticket in rows.tickets),
        mentions=[MentionSummary.model_validate(mention) for mention in rows.mentions],
    )


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """Everything support holds about the customer (empty lists when nothing)."""
    rows = await store.export_rows(session, customer_id)
    return CustomerExport(
        customer_id=customer_id,
        records={table: [_exported(row) for row in found] for table, found in rows.items()},
    )


def _exported(row: SQLModel) -> dict[str, Any]:
    values = row.model_dump()
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = aware(value).isoformat()
        elif isinstance(value, date):
            values[name] = value.isoformat()
    return values


# --- SLA ---------------------------------------------------------------------------------------


async def sla_policies(session: AsyncSession, settings: Settings) -> list[SlaPolicyPublic]:
    """The first-response and resolution targets of every priority."""
    stored = {policy.priority: policy for policy in await store.policies(session)}
    return [_policy_view(settings, priority, stored.get(priority)) for priority in PRIORITIES]


def _policy_view(
    settings: Settings, priority: Priority, stored: SupportSlaPolicy | None
) -> SlaPolicyPublic:
    if stored is not None:
        return SlaPolicyPublic(
            priority=priority,
            first_response_minutes=stored.first_response_minutes,
            resolution_minutes=stored.resolution_minutes,
            configured=True,
        )
    return SlaPolicyPublic(
        priority=priority,
        first_response_minutes=settings.sla_first_response_minutes.get(priority, 240),
        resolution_minutes=settings.sla_resolution_minutes.get(priority, 4_320),
        configured=False,
    )


async def set_sla_policy(
    session: AsyncSession,
    settings: Settings,
    priority: Priority,
    update: SlaPolicyUpdate,
    now: datetime | None = None,
) -> SlaPolicyPublic:
    """Set the targets of a priority; tickets opened or re-prioritised later use them."""
    if update.resolution_minutes < update.first_response_minutes:
        raise InvalidRequest("resolution_minutes cannot be shorter than first_response_minutes")
    policy = await store.get_policy(session, priority)
    if policy is None:
        policy = SupportSlaPolicy(
            priority=priority, first_response_minutes=0, resolution_minutes=0, updated_at=utcnow()
        )
    policy.first_response_minutes = update.first_response_minutes
    policy.resolution_minutes = update.resolution_minutes
    policy.updated_at = now or utcnow()
    store.add(session, policy)
    await session.flush()
    return _policy_view(settings, priority, policy)


async def _due_times(
    session: AsyncSession, settings: Settings, priority: Priority, opened_at: datetime
) -> tuple[datetime, datetime]:
    policy = _policy_view(settings, priority, await store.get_policy(session, priority))
    return (
        opened_at + timedelta(minutes=policy.first_response_minutes),
        opened_at + timedelta(minutes=policy.resolution_minutes),
    )


def publish_sla_breach(
    session: AsyncSession, settings: Settings, ticket: SupportTicket, breach: SupportSlaBreach
) -> None:
    """Put ticket.sla.breached on the log, in the transaction that records the breach."""
    _publish(
        session,
        settings,
        TicketSlaBreached(
            customer_id=ticket.customer_id,
            occurred_at=aware(breach.breached_at),
            ticket_id=ticket.id,
            target=breach.target,  # type: ignore[arg-type]
            priority=breach.priority,  # type: ignore[arg-type]
            due_at=aware(breach.due_at),
            breached_at=aware(breach.breached_at),
        ),
    )


async def _record_breach(
    session: AsyncSession, settings: Settings, ticket: SupportTicket, target: str, now: datetime
) -> SupportSlaBreach | None:
    if await store.get_breach(session, ticket.id, target) is not None:
        return None
    due = ticket.first_response_due_at if target == "first_response" else ticket.resolution_due_at
    breach = SupportSlaBreach(
        ticket_id=ticket.id, target=target, priority=ticket.priority, due_at=due, breached_at=now
    )
    store.add(session, breach)
    await session.flush()
    publish_sla_breach(session, settings, ticket, breach)
    return breach


async def record_due_breaches(
    session: AsyncSession, settings: Settings, now: datetime | None = None, limit: int = 500
) -> list[SupportSlaBreach]:
    """Record (and publish) every SLA target missed by now that has no breach yet."""
    now = now or utcnow()
    recorded = []
    for ticket, target in await store.overdue_tickets(session, now, limit):
        breach = await _record_breach(session, settings, ticket, target, now)
        if breach is not None:
            recorded.append(breach)
    return recorded


async def _late(
    session: AsyncSession, settings: Settings, ticket: SupportTicket, target: str, now: datetime
) -> None:
    # Met after its due time but before the monitor's next pass: still a breach.
    due = ticket.first_response_due_at if target == "first_response" else ticket.resolution_due_at
    if now > aware(due):
        await _record_breach(session, settings, ticket, target, now)


# --- tickets ---------------------------------------------------------------------------------


async def _ticket_views(session: AsyncSession, tickets: list[SupportTicket]) -> list[TicketPublic]:
    breaches = await store.breaches_for(session, [ticket.id for ticket in tickets])
    views = []
    for ticket in tickets:
        view = TicketPublic.model_validate(ticket)
        view.breaches = [BreachPublic.model_validate(b) for b in breaches[ticket.id]]
        views.append(view)
    return views


async def ticket_view(session: AsyncSession, ticket: SupportTicket) -> TicketPublic:
    """A ticket with its SLA breaches."""
    return (await _ticket_views(session, [ticket]))[0]


async def _get_ticket(session: AsyncSession, ticket_id: str) -> SupportTicket:
    ticket = await store.get_ticket(session, ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


async def ticket_detail(session: AsyncSession, ticket_id: str) -> TicketDetail:
    """A ticket with its comments, linked tickets and SLA breaches."""
    ticket = await _get_ticket(session, ticket_id)
    view = await ticket_view(session, ticket)
    links = [
        LinkPublic(
            ticket_id=link.linked_ticket_id if link.ticket_id == ticket.id else link.ticket_id,
            kind=link.kind,  # type: ignore[arg-type]
            created_at=link.created_at,
        )
        for link in await store.links_of(session, ticket.id)
    ]
    comments = [
        CommentPublic.model_validate(c) for c in await store.comments_of(session, ticket.id)
    ]
    return TicketDetail(**view.model_dump(), comments=comments, links=links)


async def open_ticket(
    session: AsyncSession,
    settings: Settings,
    data: TicketCreate,
    *,
    mention_id: str | None = None,
    now: datetime | None = None,
) -> SupportTicket:
    """Open a ticket and publish ticket.opened; refused for an erased customer."""
    now = now or utcnow()
    customer_id = await store.current_id(session, data.customer_id)
    if await store.is_erased(session, customer_id):
        raise Conflict(f"customer {customer_id} was erased")
    product_model = data.product_model
    if product_model is None and data.serial_number is not None:
        owned = await store.product_by_serial(session, customer_id, data.serial_number)
        product_model = owned.product_model if owned is not None else None
    first_due, resolution_due = await _due_times(session, settings, data.priority, now)
    ticket = SupportTicket(
        customer_id=customer_id,
        subject=data.subject,
        description=data.description,
        priority=data.priority,
        category=data.category,
        channel=data.channel,
        assignee=data.assignee,
        product_model=product_model,
        product_model_key=model_key(product_model),
        serial_number=data.serial_number,
        mention_id=mention_id,
        created_at=now,
        updated_at=now,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
    )
    store.add(session, ticket)
    await session.flush()
    _publish(
        session,
        settings,
        TicketOpened(
            customer_id=customer_id,
            occurred_at=now,
            ticket_id=ticket.id,
            subject=ticket.subject,
            category=ticket.category,
            priority=data.priority,
            channel=data.channel,
            product_model=product_model,
        ),
    )
    return ticket


async def _changed(
    session: AsyncSession,
    settings: Settings,
    ticket: SupportTicket,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    """Stamp the change and publish ticket.updated (and ticket.resolved on resolution)."""
    ticket.updated_at = now
    store.add(session, ticket)
    await session.flush()
    _publish(
        session,
        settings,
        TicketUpdated(
            customer_id=ticket.customer_id,
            occurred_at=now,
            ticket_id=ticket.id,
            status=ticket.status,  # type: ignore[arg-type]
            changes=changes,
        ),
    )
    if changes.get("status") == "resolved":
        _publish(
            session,
            settings,
            TicketResolved(
                customer_id=ticket.customer_id,
                occurred_at=now,
                ticket_id=ticket.id,
                resolution=ticket.resolution or "",
                category=ticket.category,
                product_model=ticket.product_model,
            ),
        )


async def _set_status(
    session: AsyncSession, settings: Settings, ticket: SupportTicket, status: str, now: datetime
) -> None:
    if status == ticket.status:
        return
    if status == "new":
        raise InvalidRequest("a ticket cannot go back to new")
    if status == "resolved":
        if not ticket.resolution:
            raise InvalidRequest("resolving a ticket needs a resolution")
        ticket.resolved_at = now
        await _late(session, settings, ticket, "resolution", now)
    elif status == "closed":
        ticket.closed_at = now
    elif ticket.status == "resolved":
        ticket.resolved_at = None  # reopened
    ticket.status = status


async def update_ticket(
    session: AsyncSession,
    settings: Settings,
    ticket_id: str,
    update: TicketUpdate,
    now: datetime | None = None,
) -> SupportTicket:
    """Change status, priority, category, assignee or product; publish what changed."""
    now = now or utcnow()
    ticket = await _get_ticket(session, ticket_id)
    if ticket.status == "closed":
        raise Conflict(f"ticket {ticket_id} is closed")
    fields = update.model_dump(exclude_unset=True)
    for required in ("status", "priority", "subject", "resolution"):
        if required in fields and fields[required] is None:
            raise InvalidRequest(f"{required} cannot be null")
    status = fields.pop("status", ticket.status)
    if "resolution" in fields and status not in ("resolved", "closed"):
        raise InvalidRequest("a resolution is given when the ticket is resolved or closed")
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            value = value.strip() or None
            if value is None and name in ("subject", "resolution"):
                raise InvalidRequest(f"{name} must not be blank")
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changes[name] = value
    if "product_model" in changes:
        ticket.product_model_key = model_key(ticket.product_model)
    if "priority" in changes:
        ticket.first_response_due_at, ticket.resolution_due_at = await _due_times(
            session,
            settings,
            ticket.priority,  # type: ignore[arg-type]
            aware(ticket.created_at),  # type: ignore[arg-type]
        )
        changes["first_response_due_at"] = aware(ticket.first_response_due_at).isoformat()
        changes["resolution_due_at"] = aware(ticket.resolution_due_at).isoformat()
    if status != ticket.status:
        await _set_status(session, settings, ticket, status, now)
        changes["status"] = status
    if changes:
        await _changed(session, settings, ticket, changes, now)
    return ticket


async def add_comment(
    session: AsyncSession,
    settings: Settings,
    ticket_id: str,
    data: CommentCreate,
    now: datetime | None = None,
) -> SupportTicketComment:
    """Comment on a ticket; an agent's first public answer stops the first-response clock."""
    now = now or utcnow()
    ticket = await _get_ticket(session, ticket_id)
    if ticket.status == "closed":
        raise Conflict(f"ticket {ticket_id} is closed")
    comment = SupportTicketComment(
        ticket_id=ticket.id,
        author=data.author,
        author_type=data.author_type,
        body=data.body,
        public=data.public,
        created_at=now,
    )
    store.add(session, comment)
    changes: dict[str, Any] = {}
    if data.author_type == "agent" and data.public and ticket.first_responded_at is None:
        ticket.first_responded_at = now
        await _late(session, settings, ticket, "first_response", now)
        changes["first_responded_at"] = now.isoformat()
        if ticket.status == "new":
            await _set_status(session, settings, ticket, "open", now)
            changes["status"] = "open"
    elif data.author_type == "customer" and ticket.status in ("pending", "resolved"):
        # The customer answered or came back: the ticket needs an agent again.
        await _set_status(session, settings, ticket, "open", now)
        changes["status"] = "open"
    if changes:
        await _changed(session, settings, ticket, changes, now)
    else:
        ticket.updated_at = now
        store.add(session, ticket)
    await session.flush()
    return comment


async def link_tickets(
    session: AsyncSession, ticket_id: str, data: LinkCreate, now: datetime | None = None
) -> LinkPublic:
    """Link two tickets about the same thing; linking again changes nothing."""
    if data.ticket_id == ticket_id:
        raise InvalidRequest("a ticket cannot be linked to itself")
    await _get_ticket(session, ticket_id)
    await _get_ticket(session, data.ticket_id)
    first, second = sorted((ticket_id, data.ticket_id))
    link = await store.get_link(session, first, second)
    if link is None:
        link = SupportTicketLink(
            ticket_id=first, linked_ticket_id=second, kind=data.kind, created_at=now or utcnow()
        )
        store.add(session, link)
        await session.flush()
    return LinkPublic(ticket_id=data.ticket_id, kind=link.kind, created_at=link.created_at)  # type: ignore[arg-type]


async def merge_ticket(
    session: AsyncSession,
    settings: Settings,
    ticket_id: str,
    data: MergeRequest,
    now: datetime | None = None,
) -> SupportTicket:
    """Fold a duplicate into another open ticket of the same customer; returns the target."""
    now = now or utcnow()
    if data.into_ticket_id == ticket_id:
        raise InvalidRequest("a ticket cannot be merged into itself")
    source = await _get_ticket(session, ticket_id)
    target = await _get_ticket(session, data.into_ticket_id)
    if source.customer_id != target.customer_id:
        raise Conflict("only tickets of the same customer can be merged")
    for ticket in (source, target):
        if ticket.status == "closed":
            raise Conflict(f"ticket {ticket.id} is closed")
    await store.move_comments(session, source.id, target.id)
    store.add(
        session,
        SupportTicketComment(
            ticket_id=target.id,
            author=data.actor or "support",
            author_type="agent",
            body=f"Merged ticket {source.id} ({source.subject}) into this one.",
            public=False,
            created_at=now,
        ),
    )
    await link_tickets(session, target.id, LinkCreate(ticket_id=source.id, kind="duplicate"), now)
    source.duplicate_of = target.id
    source.resolution = f"Duplicate of ticket {target.id}"
    await _set_status(session, settings, source, "closed", now)
    await _changed(session, settings, source, {"status": "closed", "duplicate_of": target.id}, now)
    target.updated_at = now
    store.add(session, target)
    await session.flush()
    return target


async def rate_ticket(
    session: AsyncSession,
    settings: Settings,
    ticket_id: str,
    data: RatingCreate,
    now: datetime | None = None,
) -> SupportTicket:
    """The customer's satisfaction rating, once, after the ticket was resolved."""
    now = now or utcnow()
    ticket = await _get_ticket(session, ticket_id)
    if ticket.status not in ("resolved", "closed") or ticket.resolved_at is None:
        raise Conflict("a ticket is rated after it was resolved")
    if ticket.rating is not None:
        raise Conflict(f"ticket {ticket_id} was already rated")
    ticket.rating, ticket.rating_comment, ticket.rated_at = data.rating, data.comment, now
    ticket.updated_at = now
    store.add(session, ticket)
    await session.flush()
    _publish(
        session,
        settings,
        TicketRated(
            customer_id=ticket.customer_id,
            occurred_at=now,
            ticket_id=ticket.id,
            rating=data.rating,
            comment=data.comment,
        ),
    )
    return ticket


async def list_tickets(
    session: AsyncSession, where: store.TicketFilter, limit: int, cursor: str | None
) -> Page[TicketPublic]:
    """Tickets matching the filter, newest first, one page at a time."""
    if where.customer_id is not None:
        where = store.TicketFilter(
            **{**where.__dict__, "customer_id": await store.current_id(session, where.customer_id)}
        )
    rows, next_cursor = await store.list_tickets(session, where, limit, cursor)
    return Page(items=await _ticket_views(session, rows), next_cursor=next_cursor)


def _next_due(ticket: SupportTicket) -> datetime | None:
    dues = [aware(ticket.resolution_due_at)]
    if ticket.first_responded_at is None:
        dues.append(aware(ticket.first_response_due_at))
    return min(dues)


async def agent_queue(session: AsyncSession, agent: str, now: datetime | None = None) -> Queue:
    """An agent's open tickets: breached first, then by the nearest SLA due time."""
    now = now or utcnow()
    tickets = await store.queue_of(session, agent)
    items = []
    for view, ticket in zip(await _ticket_views(session, tickets), tickets, strict=True):
        next_due = _next_due(ticket)
        breached = bool(view.breaches) or (next_due is not None and next_due < now)
        items.append(QueueItem(**view.model_dump(), next_due_at=next_due, breached=breached))
    items.sort(
        key=lambda item: (
            not item.breached,
            item.next_due_at or datetime.max.replace(tzinfo=now.tzinfo),
            PRIORITY_RANK.get(item.priority, len(PRIORITIES)),
        )
    )
    return Queue(agent=agent, tickets=items, breached=sum(item.breached for item in items))


# --- known issues and similar tickets -------------------------------------------------------


def _document(ticket: SupportTicket) -> str:
    return " ".join(part for part in (ticket.subject, ticket.category, ticket.description) if part)


async def _similar(
    settings: Settings, query: str, candidates: list[SupportTicket], limit: int
) -> list[SimilarTicket]:
    by_id = {ticket.id: ticket for ticket in candidates}
    documents = [(ticket.id, _document(ticket)) for ticket in candidates]
    # TF-IDF over thousands of tickets is CPU work; keep the event loop free meanwhile.
    matches = await asyncio.to_thread(
        text.most_similar,
        query,
        documents,
        limit=limit,
        min_score=settings.similarity_min_score,
    )
    return [
        SimilarTicket(ticket=TicketSummary.model_validate(by_id[match.key]), score=match.score)
        for match in matches
    ]


async def similar_tickets(
    session: AsyncSession, settings: Settings, ticket_id: str, limit: int
) -> list[SimilarTicket]:
    """Earlier tickets (of the same product model, when known) closest to this one's text."""
    ticket = await _get_ticket(session, ticket_id)
    candidates = await store.similarity_candidates(
        session, ticket.product_model_key, ticket.id, settings.similarity_corpus_limit
    )
    return await _similar(settings, _document(ticket), candidates, limit)


def _resolution_key(resolution: str) -> str:
    return " ".join(resolution.lower().split()).rstrip(".")


async def known_issues(
    session: AsyncSession,
    settings: Settings,
    product_model: str,
    query: str | None = None,
    limit: int = 5,
) -> KnownIssues:
    """The model's most frequent ticket categories with their usual resolutions."""
    key = model_key(product_model)
    if key is None:
        raise InvalidRequest("product model must not be blank")
    tickets = [
        ticket
        for ticket in await store.tickets_for_model(session, key, settings.similarity_corpus_limit)
        if ticket.duplicate_of is None
    ]
    by_category: dict[str, list[SupportTicket]] = defaultdict(list)
    for ticket in tickets:
        by_category[(ticket.category or UNCATEGORISED).lower()].append(ticket)
    categories = []
    for category, members in by_category.items():
        resolved = [t for t in members if t.resolution and t.status in ("resolved", "closed")]
        counts = Counter(_resolution_key(t.resolution or "") for t in resolved)
        # Show each resolution as an agent first wrote it.
        wording: dict[str, str] = {}
        for ticket in sorted(resolved, key=lambda t: t.created_at):
            wording.setdefault(_resolution_key(ticket.resolution or ""), ticket.resolution or "")
        categories.append(
            CategoryIssues(
                category=category,
                tickets=len(members),
                share=round(len(members) / len(tickets), 3),
                resolved=len(resolved),
                resolutions=[
                    ResolutionCount(resolution=wording[res], tickets=count)
                    for res, count in counts.most_common(TOP_RESOLUTIONS)
                ],
            )
        )
    categories.sort(key=lambda issue: (-issue.tickets, issue.category))
    similar = await _similar(settings, query, tickets, limit) if query else []
    return KnownIssues(
        product_model=tickets[0].product_model or product_model if tickets else product_model,
        tickets=len(tickets),
        open_tickets=sum(ticket.status in OPEN_STATUSES for ticket in tickets),
        categories=categories[:limit],
        similar=similar,
    )


# --- social mentions ------------------------------------------------------------------------


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
    for product in await store.products_of(session, customer_id):
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
    owner = await store.get_handle(session, data.platform, key)
    customer_id = owner.customer_id if owner is not None else None
    if customer_id is not None:
        customer_id = await store.current_id(session, customer_id)
        if await store.is_erased(session, customer_id):
            customer_id = None
    score = text.sentiment(data.text)
    kind = text.mention_kind(data.text, score.label)
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
    _publish(
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
            session,
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
        ticket = await store.get_ticket(session, mention.ticket_id)
        if ticket is not None and ticket.status != "closed":
            await add_comment(
                session,
                settings,
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
            error=_clip(error, 2_000),
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
            _publish(
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
        reply.last_error = _clip(error or f"HTTP {status_code}", 2_000)
        if reply.attempts >= settings.webhook_max_attempts or refused_for_good(status_code):
            reply.status, reply.next_attempt_at = "failed", None
        else:
            reply.next_attempt_at = now + retry_delay(
                reply.attempts, settings.webhook_backoff_s, settings.webhook_max_backoff_s
            )
    store.add(session, reply)
    await session.flush()
    return reply
