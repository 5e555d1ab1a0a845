"""Consent routes."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_profile.consents import service
from rapport_profile.consents.models import ConsentReceipt, ConsentUpdate
from rapport_profile.deps import (
    SessionDep,
    SettingsDep,
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
    customer_id: CustomerIdPath, body: ConsentUpdate, session: SessionDep, settings: SettingsDep
) -> ConsentReceipt:
    """Grant or revoke one consent; publishes consent.granted or consent.revoked."""
    await service.set_consent(session, customer_id, body, topic=settings.kafka.topic)
    await session.flush()
    return await service.consent_receipt(session, customer_id)


@router.get(
    "/customers/{customer_id}/consents",
    tags=["consents"],
    response_model=ConsentReceipt,
    responses=NOT_FOUND,
)
async def read_consents(customer_id: CustomerIdPath, session: SessionDep) -> ConsentReceipt:
    """The consent receipt: every consent and its full history."""
    return await service.consent_receipt(session, customer_id)
