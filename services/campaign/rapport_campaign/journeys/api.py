"""The journeys routes: welcome, abandoned cart and re-engagement journeys, and their reports."""

from fastapi import APIRouter, Depends, status

from rapport_campaign.campaigns import reports
from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import CampaignPublic, CampaignReport
from rapport_campaign.deps import SessionDep, SettingsDep, UnitOfWorkDep, require_token
from rapport_campaign.errors import INVALID, NOT_FOUND
from rapport_campaign.journeys import service
from rapport_campaign.journeys.models import JourneyCreate, JourneyUpdate
from rapport_events.limits import PathId

router = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/journeys",
    tags=["journeys"],
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignPublic,
    responses=INVALID,
)
async def create_journey(body: JourneyCreate, uow: UnitOfWorkDep) -> CampaignPublic:
    """Create a triggered journey: welcome, abandoned cart or re-engagement."""
    return CampaignPublic.model_validate(await service.create_journey(uow, body))


@router.get("/journeys", tags=["journeys"], response_model=list[CampaignPublic])
async def list_journeys(uow: UnitOfWorkDep) -> list[CampaignPublic]:
    """Every journey."""
    journeys = await campaign_service.list_campaigns(uow, "journey")
    return [CampaignPublic.model_validate(j) for j in journeys]


@router.get(
    "/journeys/{journey_id}", tags=["journeys"], response_model=CampaignPublic, responses=NOT_FOUND
)
async def read_journey(journey_id: PathId, uow: UnitOfWorkDep) -> CampaignPublic:
    """One journey."""
    return CampaignPublic.model_validate(
        await campaign_service.get_campaign(uow, journey_id, "journey")
    )


@router.patch(
    "/journeys/{journey_id}", tags=["journeys"], response_model=CampaignPublic, responses=NOT_FOUND
)
async def update_journey(
    journey_id: PathId, body: JourneyUpdate, uow: UnitOfWorkDep
) -> CampaignPublic:
    """Pause or resume a journey."""
    journey = await service.set_journey_active(uow, journey_id, body.active)
    return CampaignPublic.model_validate(journey)


@router.get(
    "/journeys/{journey_id}/report",
    tags=["journeys"],
    response_model=CampaignReport,
    responses=NOT_FOUND,
)
async def journey_report(
    journey_id: PathId, uow: UnitOfWorkDep, session: SessionDep, settings: SettingsDep
) -> CampaignReport:
    """The journey's funnel, like a campaign's."""
    await campaign_service.get_campaign(uow, journey_id, "journey")
    return await reports.campaign_report(session, journey_id, settings)
