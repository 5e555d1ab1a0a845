"""The customers routes: a customer's support context, and their export."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_support import lifecycle
from rapport_support.customers import service
from rapport_support.customers.models import SupportContext
from rapport_support.deps import ReadUnitOfWorkDep, require_token
from rapport_support.lifecycle import CustomerExport

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/customers/{customer_id}/support-context",
    response_model=SupportContext,
    responses={404: {"description": "support has not heard of this customer"}},
    tags=["customers"],
)
async def read_support_context(
    customer_id: CustomerIdPath, uow: ReadUnitOfWorkDep
) -> SupportContext:
    """Profile summary, products owned and earlier tickets, from support's own projection."""
    return await service.get_support_context(uow, customer_id)


@router.get("/customers/{customer_id}/export", response_model=CustomerExport, tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, uow: ReadUnitOfWorkDep) -> CustomerExport:
    """Everything support holds about the customer, table by table (GDPR export)."""
    return await lifecycle.export_customer(uow, customer_id)
