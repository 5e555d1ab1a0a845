"""The social routes: receive mentions, list and update them, and reply."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from rapport_events.limits import PathId
from rapport_support.deps import (
    Limit,
    ReadUnitOfWorkDep,
    SessionDep,
    SettingsDep,
    UnitOfWorkDep,
    WakeRepliesDep,
    after_commit,
    require_token,
)
from rapport_support.errors import NOT_FOUND
from rapport_support.mentions import service, store
from rapport_support.mentions.models import (
    MentionCreate,
    MentionDetail,
    MentionKind,
    MentionPublic,
    MentionStatus,
    MentionUpdate,
    ReplyCreate,
    ReplyPublic,
    Sentiment,
)
from rapport_support.shared import Page

router = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/social/mentions",
    status_code=status.HTTP_201_CREATED,
    response_model=MentionPublic,
    responses={200: {"description": "already received (same platform and external_id)"}},
    tags=["social"],
)
async def receive_mention(
    data: MentionCreate, response: Response, uow: UnitOfWorkDep, settings: SettingsDep
) -> MentionPublic:
    """Ingest a mention: link the handle, score sentiment, open a ticket for complaints."""
    mention, created = await service.ingest_mention(uow, settings, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return MentionPublic.model_validate(mention)


@router.get("/social/mentions", response_model=Page[MentionPublic], tags=["social"])
async def list_mentions(
    uow: ReadUnitOfWorkDep,
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
    return await service.list_mentions(uow, where, limit, cursor)


@router.get(
    "/social/mentions/{mention_id}",
    response_model=MentionDetail,
    responses=NOT_FOUND,
    tags=["social"],
)
async def read_mention(mention_id: PathId, uow: ReadUnitOfWorkDep) -> MentionDetail:
    """A mention with its replies and every delivery attempt."""
    return await service.mention_detail(uow, mention_id)


@router.patch(
    "/social/mentions/{mention_id}",
    response_model=MentionPublic,
    responses=NOT_FOUND,
    tags=["social"],
)
async def update_mention(
    mention_id: PathId, data: MentionUpdate, uow: UnitOfWorkDep
) -> MentionPublic:
    """Set a mention's status."""
    return MentionPublic.model_validate(await service.update_mention(uow, mention_id, data))


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
    uow: UnitOfWorkDep,
    session: SessionDep,
    settings: SettingsDep,
    wake_replies: WakeRepliesDep,
) -> ReplyPublic:
    """Queue a reply; it is posted to the platform's signed webhook, with retries."""
    reply = await service.reply_to_mention(uow, settings, mention_id, data)
    # The same session as the unit of work's: the dispatcher wakes once the reply is committed.
    after_commit(session, wake_replies)
    return reply
