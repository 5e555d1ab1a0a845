"""The tickets' use cases: each writes its rows and outbox events in the caller's transaction."""

from datetime import datetime
from typing import Any

from rapport_events.base import utcnow
from rapport_events.types import TicketOpened, TicketRated, TicketResolved, TicketUpdated
from rapport_support.errors import Conflict, InvalidRequest, NotFound
from rapport_support.products.models import model_key
from rapport_support.settings import Settings
from rapport_support.shared import Page, aware
from rapport_support.tickets.models import (
    PRIORITIES,
    BreachPublic,
    CommentCreate,
    CommentPublic,
    LinkCreate,
    LinkPublic,
    MergeRequest,
    Queue,
    QueueItem,
    RatingCreate,
    SimilarTicket,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
    TicketCreate,
    TicketDetail,
    TicketPublic,
    TicketUpdate,
)
from rapport_support.tickets.similarity import rank_similar, ticket_text
from rapport_support.tickets.sla import breach_if_late, due_times
from rapport_support.tickets.store import TicketFilter
from rapport_support.unit_of_work import SupportUnitOfWork

PRIORITY_RANK = {priority: rank for rank, priority in enumerate(PRIORITIES)}


async def _ticket_views(uow: SupportUnitOfWork, tickets: list[SupportTicket]) -> list[TicketPublic]:
    breaches = await uow.tickets.breaches_for([ticket.id for ticket in tickets])
    views = []
    for ticket in tickets:
        view = TicketPublic.model_validate(ticket)
        view.breaches = [BreachPublic.model_validate(b) for b in breaches[ticket.id]]
        views.append(view)
    return views


async def ticket_view(uow: SupportUnitOfWork, ticket: SupportTicket) -> TicketPublic:
    """A ticket with its SLA breaches."""
    return (await _ticket_views(uow, [ticket]))[0]


async def _get_ticket(uow: SupportUnitOfWork, ticket_id: str) -> SupportTicket:
    ticket = await uow.tickets.get_ticket(ticket_id)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


def _refuse_closed(ticket: SupportTicket) -> None:
    # A closed ticket is final: nothing changes it any more.
    if ticket.status == "closed":
        raise Conflict(f"ticket {ticket.id} is closed")


async def _open_ticket(uow: SupportUnitOfWork, ticket_id: str) -> SupportTicket:
    """The ticket, which must exist and not be closed."""
    ticket = await _get_ticket(uow, ticket_id)
    _refuse_closed(ticket)
    return ticket


async def ticket_detail(uow: SupportUnitOfWork, ticket_id: str) -> TicketDetail:
    """A ticket with its comments, linked tickets and SLA breaches."""
    ticket = await _get_ticket(uow, ticket_id)
    view = await ticket_view(uow, ticket)
    links = [
        LinkPublic(
            ticket_id=link.linked_ticket_id if link.ticket_id == ticket.id else link.ticket_id,
            kind=link.kind,  # type: ignore[arg-type]
            created_at=link.created_at,
        )
        for link in await uow.tickets.links_of(ticket.id)
    ]
    comments = [CommentPublic.model_validate(c) for c in await uow.tickets.comments_of(ticket.id)]
    return TicketDetail(**view.model_dump(), comments=comments, links=links)


async def open_ticket(
    uow: SupportUnitOfWork,
    settings: Settings,
    data: TicketCreate,
    *,
    mention_id: str | None = None,
    now: datetime | None = None,
) -> SupportTicket:
    """Open a ticket and publish ticket.opened; refused for an erased customer."""
    now = now or utcnow()
    customer_id = await uow.customers.resolve(data.customer_id)
    if customer_id is None:
        # Erasure tombstones the ids merged into the customer too, so the id asked names it.
        raise Conflict(f"customer {data.customer_id} was erased")
    product_model = data.product_model
    if product_model is None and data.serial_number is not None:
        owned = await uow.products.product_by_serial(customer_id, data.serial_number)
        product_model = owned.product_model if owned is not None else None
    first_due, resolution_due = await due_times(uow, settings, data.priority, now)
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
    uow.tickets.add(ticket)
    await uow.flush()
    await uow.outbox.publish(
        [
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
        ]
    )
    return ticket


async def _changed(
    uow: SupportUnitOfWork,
    ticket: SupportTicket,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    """Stamp the change and publish ticket.updated (and ticket.resolved on resolution)."""
    ticket.updated_at = now
    uow.tickets.add(ticket)
    await uow.flush()
    await uow.outbox.publish(
        [
            TicketUpdated(
                customer_id=ticket.customer_id,
                occurred_at=now,
                ticket_id=ticket.id,
                status=ticket.status,  # type: ignore[arg-type]
                changes=changes,
            ),
        ]
    )
    if changes.get("status") == "resolved":
        await uow.outbox.publish(
            [
                TicketResolved(
                    customer_id=ticket.customer_id,
                    occurred_at=now,
                    ticket_id=ticket.id,
                    resolution=ticket.resolution or "",
                    category=ticket.category,
                    product_model=ticket.product_model,
                ),
            ]
        )


async def _set_status(
    uow: SupportUnitOfWork, ticket: SupportTicket, status: str, now: datetime
) -> None:
    if status == ticket.status:
        return
    if status == "new":
        raise InvalidRequest("a ticket cannot go back to new")
    if status == "resolved":
        if not ticket.resolution:
            raise InvalidRequest("resolving a ticket needs a resolution")
        ticket.resolved_at = now
        await breach_if_late(uow, ticket, "resolution", now)
    elif status == "closed":
        ticket.closed_at = now
    elif ticket.status == "resolved":
        ticket.resolved_at = None  # reopened
    ticket.status = status


async def update_ticket(
    uow: SupportUnitOfWork,
    settings: Settings,
    ticket_id: str,
    update: TicketUpdate,
    now: datetime | None = None,
) -> SupportTicket:
    """Change status, priority, category, assignee or product; publish what changed."""
    now = now or utcnow()
    ticket = await _open_ticket(uow, ticket_id)
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
        ticket.first_response_due_at, ticket.resolution_due_at = await due_times(
            uow,
            settings,
            ticket.priority,  # type: ignore[arg-type]
            aware(ticket.created_at),  # type: ignore[arg-type]
        )
        changes["first_response_due_at"] = aware(ticket.first_response_due_at).isoformat()
        changes["resolution_due_at"] = aware(ticket.resolution_due_at).isoformat()
    if status != ticket.status:
        await _set_status(uow, ticket, status, now)
        changes["status"] = status
    if changes:
        await _changed(uow, ticket, changes, now)
    return ticket


async def add_comment(
    uow: SupportUnitOfWork,
    ticket_id: str,
    data: CommentCreate,
    now: datetime | None = None,
) -> SupportTicketComment:
    """Comment on a ticket; an agent's first public answer stops the first-response clock."""
    now = now or utcnow()
    ticket = await _open_ticket(uow, ticket_id)
    comment = SupportTicketComment(
        ticket_id=ticket.id,
        author=data.author,
        author_type=data.author_type,
        body=data.body,
        public=data.public,
        created_at=now,
    )
    uow.tickets.add(comment)
    changes: dict[str, Any] = {}
    if data.author_type == "agent" and data.public and ticket.first_responded_at is None:
        ticket.first_responded_at = now
        await breach_if_late(uow, ticket, "first_response", now)
        changes["first_responded_at"] = now.isoformat()
        if ticket.status == "new":
            await _set_status(uow, ticket, "open", now)
            changes["status"] = "open"
    elif data.author_type == "customer" and ticket.status in ("pending", "resolved"):
        # The customer answered or came back: the ticket needs an agent again.
        await _set_status(uow, ticket, "open", now)
        changes["status"] = "open"
    if changes:
        await _changed(uow, ticket, changes, now)
    else:
        ticket.updated_at = now
        uow.tickets.add(ticket)
    await uow.flush()
    return comment


async def link_tickets(
    uow: SupportUnitOfWork, ticket_id: str, data: LinkCreate, now: datetime | None = None
) -> LinkPublic:
    """Link two tickets about the same thing; linking again changes nothing."""
    if data.ticket_id == ticket_id:
        raise InvalidRequest("a ticket cannot be linked to itself")
    await _get_ticket(uow, ticket_id)
    await _get_ticket(uow, data.ticket_id)
    first, second = sorted((ticket_id, data.ticket_id))
    link = await uow.tickets.get_link(first, second)
    if link is None:
        link = SupportTicketLink(
            ticket_id=first, linked_ticket_id=second, kind=data.kind, created_at=now or utcnow()
        )
        uow.tickets.add(link)
        await uow.flush()
    return LinkPublic(ticket_id=data.ticket_id, kind=link.kind, created_at=link.created_at)  # type: ignore[arg-type]


async def merge_ticket(
    uow: SupportUnitOfWork,
    ticket_id: str,
    data: MergeRequest,
    now: datetime | None = None,
) -> SupportTicket:
    """Fold a duplicate into another open ticket of the same customer; returns the target."""
    now = now or utcnow()
    if data.into_ticket_id == ticket_id:
        raise InvalidRequest("a ticket cannot be merged into itself")
    source = await _get_ticket(uow, ticket_id)
    target = await _get_ticket(uow, data.into_ticket_id)
    if source.customer_id != target.customer_id:
        raise Conflict("only tickets of the same customer can be merged")
    for ticket in (source, target):
        _refuse_closed(ticket)
    await uow.tickets.move_comments(source.id, target.id)
    uow.tickets.add(
        SupportTicketComment(
            ticket_id=target.id,
            author=data.actor or "support",
            author_type="agent",
            body=f"Merged ticket {source.id} ({source.subject}) into this one.",
            public=False,
            created_at=now,
        ),
    )
    await link_tickets(uow, target.id, LinkCreate(ticket_id=source.id, kind="duplicate"), now)
    source.duplicate_of = target.id
    source.resolution = f"Duplicate of ticket {target.id}"
    await _set_status(uow, source, "closed", now)
    await _changed(uow, source, {"status": "closed", "duplicate_of": target.id}, now)
    target.updated_at = now
    uow.tickets.add(target)
    await uow.flush()
    return target


async def rate_ticket(
    uow: SupportUnitOfWork,
    ticket_id: str,
    data: RatingCreate,
    now: datetime | None = None,
) -> SupportTicket:
    """The customer's satisfaction rating, once, after the ticket was resolved."""
    now = now or utcnow()
    ticket = await _get_ticket(uow, ticket_id)
    if ticket.status not in ("resolved", "closed") or ticket.resolved_at is None:
        raise Conflict("a ticket is rated after it was resolved")
    if ticket.rating is not None:
        raise Conflict(f"ticket {ticket_id} was already rated")
    ticket.rating, ticket.rating_comment, ticket.rated_at = data.rating, data.comment, now
    ticket.updated_at = now
    uow.tickets.add(ticket)
    await uow.flush()
    await uow.outbox.publish(
        [
            TicketRated(
                customer_id=ticket.customer_id,
                occurred_at=now,
                ticket_id=ticket.id,
                rating=data.rating,
                comment=data.comment,
            ),
        ]
    )
    return ticket


async def list_tickets(
    uow: SupportUnitOfWork, where: TicketFilter, limit: int, cursor: str | None
) -> Page[TicketPublic]:
    """Tickets matching the filter, newest first, one page at a time."""
    if where.customer_id is not None:
        where = TicketFilter(
            **{
                **where.__dict__,
                # An erased customer has no tickets left: the id asked then finds none.
                "customer_id": await uow.customers.resolve(where.customer_id) or where.customer_id,
            }
        )
    rows, next_cursor = await uow.tickets.list_tickets(where, limit, cursor)
    return Page(items=await _ticket_views(uow, rows), next_cursor=next_cursor)


def _next_due(ticket: SupportTicket) -> datetime | None:
    dues = [aware(ticket.resolution_due_at)]
    if ticket.first_responded_at is None:
        dues.append(aware(ticket.first_response_due_at))
    return min(dues)


async def agent_queue(uow: SupportUnitOfWork, agent: str, now: datetime | None = None) -> Queue:
    """An agent's open tickets: breached first, then by the nearest SLA due time."""
    now = now or utcnow()
    tickets = await uow.tickets.queue_of(agent)
    items = []
    for view, ticket in zip(await _ticket_views(uow, tickets), tickets, strict=True):
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


async def similar_tickets(
    uow: SupportUnitOfWork, settings: Settings, ticket_id: str, limit: int
) -> list[SimilarTicket]:
    """Earlier tickets (of the same product model, when known) closest to this one's text."""
    ticket = await _get_ticket(uow, ticket_id)
    candidates = await uow.tickets.similarity_candidates(
        ticket.product_model_key, ticket.id, settings.similarity_corpus_limit
    )
    return await rank_similar(settings, ticket_text(ticket), candidates, limit)
