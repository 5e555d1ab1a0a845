"""The customers routes: a customer's sales data, and its export."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_sales import lifecycle
from rapport_sales.activities import service as activities
from rapport_sales.activities.models import ActivityPublic
from rapport_sales.deps import Cursor, Limit, UnitOfWorkDep, require_token
from rapport_sales.lifecycle import CustomerExport
from rapport_sales.shared import Page

router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/customers/{customer_id}/export", tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> CustomerExport:
    """Everything sales holds about the customer, table by table (GDPR export)."""
    return await lifecycle.export_customer(uow, customer_id)


@router.get("/customers/{customer_id}/activities", tags=["customers", "activities"])
async def customer_activities(
    customer_id: CustomerIdPath, uow: UnitOfWorkDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ActivityPublic]:
    """The contact's activities, newest first."""
    return await activities.list_activities(
        uow, account_id=None, customer_id=customer_id, kind=None, limit=limit, cursor=cursor
    )
