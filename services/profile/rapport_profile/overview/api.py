"""The customer overview route."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport_events.limits import CustomerIdPath
from rapport_profile.deps import UnitOfWorkDep, require_token
from rapport_profile.errors import NOT_FOUND
from rapport_profile.overview import service
from rapport_profile.overview.models import CustomerOverview

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/customers/{customer_id}/overview",
    tags=["customers"],
    response_model=CustomerOverview,
    responses=NOT_FOUND,
)
async def read_overview(
    customer_id: CustomerIdPath,
    uow: UnitOfWorkDep,
    type: Annotated[
        list[str] | None,
        Query(description="timeline event types, like order.completed (repeat or comma-separate)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="timeline entries")] = 50,
) -> CustomerOverview:
    """The customer with consents, metrics, the newest timeline entries and spend per month."""
    return await service.overview(uow, customer_id, types=type or [], limit=limit)
