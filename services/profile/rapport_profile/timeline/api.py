"""Timeline and disclosure routes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport_events.limits import CustomerIdPath
from rapport_profile.deps import (
    UnitOfWorkDep,
    require_token,
)
from rapport_profile.errors import NOT_FOUND
from rapport_profile.timeline import service
from rapport_profile.timeline.models import DisclosurePublic, TimelinePage

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/customers/{customer_id}/timeline",
    tags=["activity"],
    response_model=TimelinePage,
    responses=NOT_FOUND,
)
async def read_timeline(
    customer_id: CustomerIdPath,
    uow: UnitOfWorkDep,
    type: Annotated[
        list[str] | None,
        Query(description="event types, like order.completed (repeat or comma-separate)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TimelinePage:
    """Everything any service published about the customer, newest first."""
    return await service.read_page(uow, customer_id, types=type or [], limit=limit, cursor=cursor)


@router.get(
    "/customers/{customer_id}/disclosures",
    tags=["privacy"],
    response_model=list[DisclosurePublic],
    responses=NOT_FOUND,
)
async def read_disclosures(
    customer_id: CustomerIdPath, uow: UnitOfWorkDep
) -> list[DisclosurePublic]:
    """Which partner saw what, when and why (from partner.data.disclosed)."""
    found = await service.disclosures_about(uow, customer_id)
    return [DisclosurePublic.model_validate(d) for d in found]
