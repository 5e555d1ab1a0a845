"""The campaigns routes: broadcasts, their reports, and channel analytics."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, status

from rapport_campaign.campaigns import previews, reports, service
from rapport_campaign.campaigns.models import (
    CampaignCreate,
    CampaignPublic,
    CampaignReport,
    ChannelAnalytics,
    LaunchRequest,
    MessagePreview,
)
from rapport_campaign.deps import (
    SessionDep,
    SettingsDep,
    UnitOfWorkDep,
    WorkerDep,
    require_token,
)
from rapport_campaign.errors import CONFLICT, INVALID, NOT_FOUND
from rapport_events.limits import PathId

router = APIRouter(dependencies=[Depends(require_token)])
# Registered after the journeys, so the paths keep their order in the OpenAPI document.
analytics = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/campaigns",
    tags=["campaigns"],
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignPublic,
    responses=INVALID,
)
async def create_campaign(body: CampaignCreate, uow: UnitOfWorkDep) -> CampaignPublic:
    """Create a campaign (a draft) to a segment or a list of customers."""
    return CampaignPublic.model_validate(await service.create_campaign(uow, body))


@router.get("/campaigns", tags=["campaigns"], response_model=list[CampaignPublic])
async def list_campaigns(uow: UnitOfWorkDep) -> list[CampaignPublic]:
    """Every campaign."""
    campaigns = await service.list_campaigns(uow, "broadcast")
    return [CampaignPublic.model_validate(c) for c in campaigns]


@router.get(
    "/campaigns/{campaign_id}",
    tags=["campaigns"],
    response_model=CampaignPublic,
    responses=NOT_FOUND,
)
async def read_campaign(campaign_id: PathId, uow: UnitOfWorkDep) -> CampaignPublic:
    """One campaign."""
    return CampaignPublic.model_validate(await service.get_campaign(uow, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/launch",
    tags=["campaigns"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def launch_campaign(
    campaign_id: PathId,
    uow: UnitOfWorkDep,
    worker: WorkerDep,
    background: BackgroundTasks,
    body: LaunchRequest | None = None,
) -> CampaignPublic:
    """Send now (or schedule with `at`); consent and caps are checked as each message goes."""
    campaign = await service.launch_campaign(uow, campaign_id, body.at if body else None)
    # After the commit, so the sender finds the new messages.
    background.add_task(worker.wake)
    return CampaignPublic.model_validate(campaign)


@router.get(
    "/campaigns/{campaign_id}/preview",
    tags=["campaigns"],
    response_model=MessagePreview,
    responses={**NOT_FOUND, **INVALID},
)
async def preview_message(
    campaign_id: PathId,
    uow: UnitOfWorkDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=64)],
    variant: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> MessagePreview:
    """A variant's subject, text and HTML as one customer would get them; nothing is sent."""
    return await previews.preview_message(uow, campaign_id, customer_id, variant)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    tags=["campaigns"],
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def cancel_campaign(campaign_id: PathId, uow: UnitOfWorkDep) -> CampaignPublic:
    """Cancel a campaign; messages not yet sent are dropped."""
    return CampaignPublic.model_validate(await service.cancel_campaign(uow, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/report",
    tags=["campaigns"],
    response_model=CampaignReport,
    responses=NOT_FOUND,
)
async def campaign_report(
    campaign_id: PathId, session: SessionDep, settings: SettingsDep
) -> CampaignReport:
    """Targeted, suppressed, sent, delivered, opened, clicked, converted, revenue, per variant."""
    return await reports.campaign_report(session, campaign_id, settings)


@analytics.get("/analytics/channels", tags=["analytics"], response_model=ChannelAnalytics)
async def channel_analytics(session: SessionDep) -> ChannelAnalytics:
    """Customers, revenue and conversion per acquisition channel, campaign and message channel."""
    return await reports.channel_analytics(session)
