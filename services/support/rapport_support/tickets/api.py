"""The tickets routes: open, update, comment, link, merge and rate tickets; queues and SLA
policies."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from rapport_events.limits import PathId
from rapport_events.types import Priority, TicketStatus
from rapport_support.deps import (
    Limit,
    ReadUnitOfWorkDep,
    SettingsDep,
    UnitOfWorkDep,
    require_token,
)
from rapport_support.errors import NOT_FOUND
from rapport_support.products.models import model_key
from rapport_support.shared import Page
from rapport_support.tickets import service, sla, store
from rapport_support.tickets.models import (
    CommentCreate,
    CommentPublic,
    LinkCreate,
    LinkPublic,
    MergeRequest,
    Queue,
    RatingCreate,
    SimilarTicket,
    SlaPolicyPublic,
    SlaPolicyUpdate,
    TicketChannel,
    TicketCreate,
    TicketDetail,
    TicketPublic,
    TicketUpdate,
)

router = APIRouter(dependencies=[Depends(require_token)])

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the ticket is closed, or the request contradicts stored data"}
}


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketPublic,
    responses={409: {"description": "the customer was erased"}},
    tags=["tickets"],
)
async def create_ticket(
    data: TicketCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> TicketPublic:
    """Open a ticket; publishes ticket.opened."""
    ticket = await service.open_ticket(uow, settings, data)
    return await service.ticket_view(uow, ticket)


@router.get("/tickets", response_model=Page[TicketPublic], tags=["tickets"])
async def list_tickets(
    uow: ReadUnitOfWorkDep,
    customer_id: str | None = None,
    ticket_status: Annotated[list[TicketStatus] | None, Query(alias="status")] = None,
    product_model: str | None = None,
    priority: Priority | None = None,
    category: str | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    channel: TicketChannel | None = None,
    q: Annotated[str | None, Query(max_length=200, description="text in subject or body")] = None,
    breached: bool | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[TicketPublic]:
    """Search and filter tickets, newest first (`status` may repeat)."""
    where = store.TicketFilter(
        customer_id=customer_id,
        statuses=tuple(ticket_status or ()),
        product_model_key=model_key(product_model),
        priority=priority,
        category=category,
        assignee=assignee,
        unassigned=unassigned,
        channel=channel,
        text=q.strip() if q else None,
        breached=breached,
    )
    return await service.list_tickets(uow, where, limit, cursor)


@router.get(
    "/tickets/{ticket_id}", response_model=TicketDetail, responses=NOT_FOUND, tags=["tickets"]
)
async def read_ticket(ticket_id: PathId, uow: ReadUnitOfWorkDep) -> TicketDetail:
    """A ticket with its comments, linked tickets and SLA breaches."""
    return await service.ticket_detail(uow, ticket_id)


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def update_ticket(
    ticket_id: PathId, data: TicketUpdate, uow: UnitOfWorkDep, settings: SettingsDep
) -> TicketPublic:
    """Change status, priority, category, assignee or product; publishes ticket.updated."""
    ticket = await service.update_ticket(uow, settings, ticket_id, data)
    return await service.ticket_view(uow, ticket)


@router.post(
    "/tickets/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def add_comment(
    ticket_id: PathId, data: CommentCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> CommentPublic:
    """Comment publicly or internally; an agent's first public comment is the first response."""
    comment = await service.add_comment(uow, ticket_id, data)
    return CommentPublic.model_validate(comment)


@router.post(
    "/tickets/{ticket_id}/links",
    status_code=status.HTTP_201_CREATED,
    response_model=LinkPublic,
    responses=NOT_FOUND,
    tags=["tickets"],
)
async def link_ticket(ticket_id: PathId, data: LinkCreate, uow: UnitOfWorkDep) -> LinkPublic:
    """Link another ticket as related or duplicate."""
    return await service.link_tickets(uow, ticket_id, data)


@router.post(
    "/tickets/{ticket_id}/merge",
    response_model=TicketDetail,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def merge_ticket(
    ticket_id: PathId, data: MergeRequest, uow: UnitOfWorkDep, settings: SettingsDep
) -> TicketDetail:
    """Fold this duplicate into another ticket; returns the ticket it was merged into."""
    target = await service.merge_ticket(uow, ticket_id, data)
    return await service.ticket_detail(uow, target.id)


@router.post(
    "/tickets/{ticket_id}/rating",
    response_model=TicketPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def rate_ticket(
    ticket_id: PathId, data: RatingCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> TicketPublic:
    """The customer's satisfaction rating after resolution; publishes ticket.rated."""
    ticket = await service.rate_ticket(uow, ticket_id, data)
    return await service.ticket_view(uow, ticket)


@router.get(
    "/tickets/{ticket_id}/similar",
    response_model=list[SimilarTicket],
    responses=NOT_FOUND,
    tags=["tickets"],
)
async def similar_tickets(
    ticket_id: PathId,
    uow: ReadUnitOfWorkDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SimilarTicket]:
    """Earlier tickets most similar in text (TF-IDF cosine), of the same product model."""
    return await service.similar_tickets(uow, settings, ticket_id, limit)


@router.get("/agents/{agent}/queue", response_model=Queue, tags=["tickets"])
async def agent_queue(agent: str, uow: ReadUnitOfWorkDep) -> Queue:
    """The agent's open tickets, breached first, then by the nearest SLA due time."""
    return await service.agent_queue(uow, agent)


@router.get("/sla-policies", response_model=list[SlaPolicyPublic], tags=["sla"])
async def sla_policies(uow: ReadUnitOfWorkDep, settings: SettingsDep) -> list[SlaPolicyPublic]:
    """First-response and resolution targets per priority."""
    return await sla.sla_policies(uow, settings)


@router.put("/sla-policies/{priority}", response_model=SlaPolicyPublic, tags=["sla"])
async def set_sla_policy(
    priority: Priority, data: SlaPolicyUpdate, uow: UnitOfWorkDep, settings: SettingsDep
) -> SlaPolicyPublic:
    """Set the targets of one priority, for tickets opened or re-prioritised from now on."""
    return await sla.set_sla_policy(uow, settings, priority, data)
