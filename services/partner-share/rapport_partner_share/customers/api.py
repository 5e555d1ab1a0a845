"""The customers routes (admin): whether partner-share knows a customer, what partners were
shown about them, and everything held about them."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_partner_share import lifecycle
from rapport_partner_share.customers import service
from rapport_partner_share.customers.models import KnownCustomerPublic
from rapport_partner_share.deps import Limit, UnitOfWorkDep, require_token
from rapport_partner_share.errors import CustomerNotFound, missing
from rapport_partner_share.ledger import service as ledger
from rapport_partner_share.ledger.models import DisclosurePage
from rapport_partner_share.lifecycle import CustomerExport

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/customers/{customer_id}",
    response_model=KnownCustomerPublic,
    responses={404: {"description": "partner-share has not heard of this customer"}},
    tags=["customers"],
)
async def read_known_customer(
    customer_id: CustomerIdPath, uow: UnitOfWorkDep
) -> KnownCustomerPublic:
    """Whether partner-share knows a customer, and since when (admin)."""
    try:
        customer = await service.get_known_customer(uow, customer_id)
    except CustomerNotFound as not_found:
        raise missing("customer", not_found) from not_found
    return KnownCustomerPublic.of(customer)


@router.get(
    "/customers/{customer_id}/disclosures", response_model=DisclosurePage, tags=["customers"]
)
async def list_customer_disclosures(
    customer_id: CustomerIdPath, uow: UnitOfWorkDep, cursor: str | None = None, limit: Limit = 100
) -> DisclosurePage:
    """Which partner was shown what about this customer, when and why, newest first."""
    disclosures, next_cursor = await ledger.ledger_page(
        uow, customer_id=customer_id, cursor=cursor, limit=limit
    )
    return DisclosurePage(disclosures=disclosures, next_cursor=next_cursor)


@router.get("/customers/{customer_id}/export", response_model=CustomerExport, tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> CustomerExport:
    """Everything partner-share holds about a customer (empty lists when nothing)."""
    return await lifecycle.export_customer(uow, customer_id)
