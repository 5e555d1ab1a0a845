"""The audience routes: a customer as campaign sees them, and their export."""

from fastapi import APIRouter, Depends

from rapport_campaign import lifecycle
from rapport_campaign.audience import service
from rapport_campaign.audience.models import AudienceMemberPublic
from rapport_campaign.deps import UnitOfWorkDep, require_token
from rapport_campaign.errors import NOT_FOUND
from rapport_campaign.lifecycle import CustomerExport
from rapport_events.limits import CustomerIdPath

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/audience/{customer_id}",
    tags=["audience"],
    response_model=AudienceMemberPublic,
    responses=NOT_FOUND,
)
async def read_audience_member(
    customer_id: CustomerIdPath, uow: UnitOfWorkDep
) -> AudienceMemberPublic:
    """One customer as campaigns see them, with metrics and segments."""
    member, segments = await service.get_member(uow, customer_id)
    public_member = AudienceMemberPublic.model_validate(member)
    return public_member.model_copy(update={"segments": segments})


@router.get("/customers/{customer_id}/export", tags=["privacy"], response_model=CustomerExport)
async def export_customer(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> CustomerExport:
    """Everything campaign holds about the customer (empty lists when nothing)."""
    records = await lifecycle.export_customer(uow, customer_id)
    return CustomerExport(service="campaign", customer_id=customer_id, records=records)
