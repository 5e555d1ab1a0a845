"""Consent routes."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_profile.consents import service
from rapport_profile.consents.models import ConsentReceipt, ConsentUpdate
from rapport_profile.deps import (
    UnitOfWorkDep,
    require_token,
)
from rapport_profile.errors import CONFLICT, NOT_FOUND

router = APIRouter(dependencies=[Depends(require_token)])


@router.put(
    "/customers/{customer_id}/consents",
    tags=["consents"],
    response_model=ConsentReceipt,
    responses={**NOT_FOUND, **CONFLICT},
)
async def put_consent(
    customer_id: CustomerIdPath, body: ConsentUpdate, uow: UnitOfWorkDep
) -> ConsentReceipt:
    """Grant or revoke one consent; publishes consent.granted or consent.revoked."""
    await service.set_consent(uow, customer_id, body)
    await uow.flush()
    return await service.receipt(uow, customer_id)


@router.get(
    "/customers/{customer_id}/consents",
    tags=["consents"],
    response_model=ConsentReceipt,
    responses=NOT_FOUND,
)
async def read_consents(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> ConsentReceipt:
    """The consent receipt: every consent and its full history."""
    return await service.receipt(uow, customer_id)
