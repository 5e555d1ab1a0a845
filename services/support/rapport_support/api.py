"""Support's HTTP routes: parse, call the service, shape the reply."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from rapport_events.limits import CustomerIdPath, PathId
from rapport_events.types import Priority, TicketStatus
from rapport_support import service, store
from rapport_support.deps import (
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    WakeRepliesDep,
    after_commit,
    require_token,
)
from rapport_support.models import (
    CommentCreate,
    CommentPublic,
    CustomerExport,
    KnownIssues,
    LinkCreate,
    LinkPublic,
    MentionCreate,
    MentionDetail,
    MentionKind,
    MentionPublic,
    MentionStatus,
    MentionUpdate,
    MergeRequest,
    Page,
    Queue,
    RatingCreate,
    ReplyCreate,
    ReplyPublic,
    Sentiment,
    SimilarTicket,
    SlaPolicyPublic,
    SlaPolicyUpdate,
    SupportContext,
    TicketChannel,
    TicketCreate,
    TicketDetail,
    TicketPublic,
    TicketUpdate,
    model_key,
)

router = APIRouter(dependencies=[Depends(require_token)])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such resource"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the ticket is closed, or the request contradicts stored data"}
}
Limit = Annotated[int, Query(ge=1, le=200)]


# --- customers ---------------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/support-context",
    response_model=SupportContext,
    responses={404: {"description": "support has not heard of this customer"}},
    tags=["customers"],
)
async def read_support_context(
    customer_id: CustomerIdPath, session: ReadSessionDep
) -> SupportContext:
    """Profile summary, products owned and earlier tickets, from support's own projection."""
    return await service.get_support_context(session, customer_id)


@router.get("/customers/{customer_id}/export", response_model=CustomerExport, tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, session: ReadSessionDep) -> CustomerExport:
    """Everything support holds about the customer, table by table (GDPR export)."""
    return await service.export_customer(session, customer_id)


# --- tickets -----------------------------------------------------------------------------------


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketPublic,
    responses={409: {"description": "the customer was erased"}},
    tags=["tickets"],
)
async def create_ticket(
    data: TicketCreate, session: SessionDep, settings: SettingsDep
) -> TicketPublic:
    """Open a ticket; publishes ticket.opened."""
    ticket = await service.open_ticket(session, settings, data)
    return await service.ticket_view(session, ticket)


@router.get("/tickets", response_model=Page[TicketPublic], tags=["tickets"])
async def list_tickets(
    session: ReadSessionDep,
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
    return await service.list_tickets(session, where, limit, cursor)


@router.get(
    "/tickets/{ticket_id}", response_model=TicketDetail, responses=NOT_FOUND, tags=["tickets"]
)
async def read_ticket(ticket_id: PathId, session: ReadSessionDep) -> TicketDetail:
    """A ticket with its comments, linked tickets and SLA breaches."""
    return await service.ticket_detail(session, ticket_id)


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def update_ticket(
    ticket_id: PathId, data: TicketUpdate, session: SessionDep, settings: SettingsDep
) -> TicketPublic:
    """Change status, priority, category, assignee or product; publishes ticket.updated."""
    ticket = await service.update_ticket(session, settings, ticket_id, data)
    return await service.ticket_view(session, ticket)


@router.post(
    "/tickets/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def add_comment(
    ticket_id: PathId, data: CommentCreate, session: SessionDep, settings: SettingsDep
) -> CommentPublic:
    """Comment publicly or internally; an agent's first public comment is the first response."""
    comment = await service.add_comment(session, settings, ticket_id, data)
    return CommentPublic.model_validate(comment)


@router.post(
    "/tickets/{ticket_id}/links",
    status_code=status.HTTP_201_CREATED,
    response_model=LinkPublic,
    responses=NOT_FOUND,
    tags=["tickets"],
)
async def link_ticket(ticket_id: PathId, data: LinkCreate, session: SessionDep) -> LinkPublic:
    """Link another ticket as related or duplicate."""
    return await service.link_tickets(session, ticket_id, data)


@router.post(
    "/tickets/{ticket_id}/merge",
    response_model=TicketDetail,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def merge_ticket(
    ticket_id: PathId, data: MergeRequest, session: SessionDep, settings: SettingsDep
) -> TicketDetail:
    """Fold this duplicate into another ticket; returns the ticket it was merged into."""
    target = await service.merge_ticket(session, settings, ticket_id, data)
    return await service.ticket_detail(session, target.id)


@router.post(
    "/tickets/{ticket_id}/rating",
    response_model=TicketPublic,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["tickets"],
)
async def rate_ticket(
    ticket_id: PathId, data: RatingCreate, session: SessionDep, settings: SettingsDep
) -> TicketPublic:
    """The customer's satisfaction rating after resolution; publishes ticket.rated."""
    ticket = await service.rate_ticket(session, settings, ticket_id, data)
    return await service.ticket_view(session, ticket)


@router.get(
    "/tickets/{ticket_id}/similar",
    response_model=list[SimilarTicket],
    responses=NOT_FOUND,
    tags=["tickets"],
)
async def similar_tickets(
    ticket_id: PathId,
    session: ReadSessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SimilarTicket]:
    """Earlier tickets most similar in text (TF-IDF cosine), of the same product model."""
    return await service.similar_tickets(session, settings, ticket_id, limit)


@router.get("/agents/{agent}/queue", response_model=Queue, tags=["tickets"])
async def agent_queue(agent: str, session: ReadSessionDep) -> Queue:
    """The agent's open tickets, breached first, then by the nearest SLA due time."""
    return await service.agent_queue(session, agent)


@router.get("/sla-policies", response_model=list[SlaPolicyPublic], tags=["sla"])
async def sla_policies(session: ReadSessionDep, settings: SettingsDep) -> list[SlaPolicyPublic]:
    """First-response and resolution targets per priority."""
    return await service.sla_policies(session, settings)


@router.put("/sla-policies/{priority}", response_model=SlaPolicyPublic, tags=["sla"])
async def set_sla_policy(
    priority: Priority, data: SlaPolicyUpdate, session: SessionDep, settings: SettingsDep
) -> SlaPolicyPublic:
    """Set the targets of one priority, for tickets opened or re-prioritised from now on."""
    return await service.set_sla_policy(session, settings, priority, data)


# --- products ------------------------------------------------------------------------------------


@router.get(
    "/products/{product_model:path}/known-issues", response_model=KnownIssues, tags=["products"]
)
async def known_issues(
    product_model: str,
    session: ReadSessionDep,
    settings: SettingsDep,
    text: Annotated[
        str | None, Query(max_length=5_000, description="a new problem, to find similar tickets")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> KnownIssues:
    """The model's most frequent ticket categories and their resolutions; similar tickets."""
    return await service.known_issues(session, settings, product_model, text, limit)


# --- social mentions ---------------------------------------------------------------------------


@router.post(
    "/social/mentions",
    status_code=status.HTTP_201_CREATED,
    response_model=MentionPublic,
    responses={200: {"description": "already received (same platform and external_id)"}},
    tags=["social"],
)
async def receive_mention(
    data: MentionCreate, response: Response, session: SessionDep, settings: SettingsDep
) -> MentionPublic:
    """Ingest a mention: link the handle, score sentiment, open a ticket for complaints."""
    mention, created = await service.ingest_mention(session, settings, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return MentionPublic.model_validate(mention)


@router.get("/social/mentions", response_model=Page[MentionPublic], tags=["social"])
async def list_mentions(
    session: ReadSessionDep,
    platform: str | None = None,
    sentiment: Sentiment | None = None,
    mention_status: Annotated[MentionStatus | None, Query(alias="status")] = None,
    kind: MentionKind | None = None,
    customer_id: str | None = None,
    linked: bool | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[MentionPublic]:
    """Mentions for PR staff, newest first, by platform, sentiment and status."""
    where = store.MentionFilter(
        platform=platform,
        sentiment=sentiment,
        status=mention_status,
        kind=kind,
        customer_id=customer_id,
        linked=linked,
    )
    return await service.list_mentions(session, where, limit, cursor)


@router.get(
    "/social/mentions/{mention_id}",
    response_model=MentionDetail,
    responses=NOT_FOUND,
    tags=["social"],
)
async def read_mention(mention_id: PathId, session: ReadSessionDep) -> MentionDetail:
    """A mention with its replies and every delivery attempt."""
    return await service.mention_detail(session, mention_id)


@router.patch(
    "/social/mentions/{mention_id}",
    response_model=MentionPublic,
    responses=NOT_FOUND,
    tags=["social"],
)
async def update_mention(
    mention_id: PathId, data: MentionUpdate, session: SessionDep
) -> MentionPublic:
    """Set a mention's status."""
    return MentionPublic.model_validate(await service.update_mention(session, mention_id, data))


@router.post(
    "/social/mentions/{mention_id}/reply",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplyPublic,
    responses={**NOT_FOUND, 422: {"description": "no webhook for the platform, or bad input"}},
    tags=["social"],
)
async def reply_to_mention(
    mention_id: PathId,
    data: ReplyCreate,
    session: SessionDep,
    settings: SettingsDep,
    wake_replies: WakeRepliesDep,
) -> ReplyPublic:
    """Queue a reply; it is posted to the platform's signed webhook, with retries."""
    reply = await service.reply_to_mention(session, settings, mention_id, data)
    after_commit(session, wake_replies)
    return reply
