"""The pipelines and opportunities routes: sales processes, and deals moving through them."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport_events.limits import PathId
from rapport_sales.deps import Cursor, Limit, OwnerFilter, SettingsDep, UnitOfWorkDep, require_token
from rapport_sales.errors import CONFLICT, REFERENCE_NOT_FOUND
from rapport_sales.opportunities import service
from rapport_sales.opportunities.models import (
    OpportunityCreate,
    OpportunityLose,
    OpportunityPublic,
    OpportunityUpdate,
    OpportunityWin,
    PipelineCreate,
    PipelinePublic,
    Status,
)
from rapport_sales.shared import Page

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/pipelines", status_code=201, tags=["pipelines"], responses=CONFLICT)
async def create_pipeline(body: PipelineCreate, uow: UnitOfWorkDep) -> PipelinePublic:
    """A pipeline with ordered stages and a win probability per stage."""
    return await service.create_pipeline(uow, body)


@router.get("/pipelines", tags=["pipelines"])
async def list_pipelines(uow: UnitOfWorkDep) -> list[PipelinePublic]:
    """Every pipeline with its stages (`default` is there from the start)."""
    return await service.list_pipelines(uow)


@router.get("/pipelines/{pipeline_id}", tags=["pipelines"])
async def read_pipeline(pipeline_id: PathId, uow: UnitOfWorkDep) -> PipelinePublic:
    """A pipeline and its ordered stages."""
    return await service.pipeline_view(uow, pipeline_id)


@router.post(
    "/opportunities", status_code=201, tags=["opportunities"], responses=REFERENCE_NOT_FOUND
)
async def create_opportunity(
    body: OpportunityCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> OpportunityPublic:
    """Open an opportunity; without a `source`, the primary contact's attribution is used."""
    return await service.create_opportunity(uow, body, settings.default_currency)


@router.get("/opportunities", tags=["opportunities"])
async def list_opportunities(
    uow: UnitOfWorkDep,
    opportunity_status: Annotated[Status | None, Query(alias="status")] = None,
    owner: OwnerFilter = None,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    pipeline_id: Annotated[str | None, Query(max_length=64)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[OpportunityPublic]:
    """Opportunities newest first, by status, owner, account, pipeline or stage."""
    return await service.list_opportunities(
        uow,
        status=opportunity_status,
        owner=owner,
        account_id=account_id,
        pipeline_id=pipeline_id,
        stage=stage,
        limit=limit,
        cursor=cursor,
    )


@router.get("/opportunities/{opportunity_id}", tags=["opportunities"])
async def read_opportunity(opportunity_id: PathId, uow: UnitOfWorkDep) -> OpportunityPublic:
    """The opportunity, its contacts and its stage history."""
    found = await service.get_opportunity(uow, opportunity_id)
    return await service.opportunity_view(uow, found)


@router.patch("/opportunities/{opportunity_id}", tags=["opportunities"], responses=CONFLICT)
async def update_opportunity(
    opportunity_id: PathId, body: OpportunityUpdate, uow: UnitOfWorkDep, settings: SettingsDep
) -> OpportunityPublic:
    """Change an open opportunity; a new `stage` publishes opportunity.stage.changed."""
    return await service.update_opportunity(uow, opportunity_id, body)


@router.post("/opportunities/{opportunity_id}/win", tags=["opportunities"], responses=CONFLICT)
async def win_opportunity(
    opportunity_id: PathId,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    body: OpportunityWin | None = None,
) -> OpportunityPublic:
    """Close as won; by default the deal is recorded as an order of its primary contact,
    which reaches profile's metrics and campaign's attribution."""
    return await service.win_opportunity(uow, opportunity_id, body or OpportunityWin())


@router.post("/opportunities/{opportunity_id}/lose", tags=["opportunities"], responses=CONFLICT)
async def lose_opportunity(
    opportunity_id: PathId, body: OpportunityLose, uow: UnitOfWorkDep, settings: SettingsDep
) -> OpportunityPublic:
    """Close as lost, with the reason."""
    return await service.lose_opportunity(uow, opportunity_id, body)
