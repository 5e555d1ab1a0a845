"""GDPR routes: export, erasure and its status."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse

from rapport_events.limits import CustomerIdPath
from rapport_profile.deps import (
    HttpDep,
    SessionsDep,
    SettingsDep,
    require_token,
)
from rapport_profile.errors import NOT_FOUND
from rapport_profile.gdpr import service
from rapport_profile.gdpr.models import ErasureStatus, ExportReply

router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/customers/{customer_id}/export", tags=["privacy"], response_model=ExportReply)
async def export_customer(
    customer_id: CustomerIdPath,
    sessions: SessionsDep,
    settings: SettingsDep,
    http: HttpDep,
    scope: Annotated[str, Query(pattern="^(all|local)$")] = "all",
) -> ExportReply:
    """Everything held about the customer: profile's records and every other service's."""
    records = await service.read_local_records(sessions, customer_id)
    reply = ExportReply(service="profile", customer_id=customer_id, records=records)
    if scope == "all":
        reply.services, reply.complete = await service.gather_exports(http, settings, customer_id)
    return reply


@router.delete(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=ErasureStatus,
    responses={
        202: {"model": ErasureStatus, "description": "erasure still running; poll status_url"},
        **NOT_FOUND,
    },
)
async def erase_customer(
    customer_id: CustomerIdPath, sessions: SessionsDep, settings: SettingsDep, http: HttpDep
) -> JSONResponse:
    """Erase the customer everywhere (customer.erased); 200 once every service holds nothing."""
    erasure = await service.erase(sessions, http, settings, customer_id)
    return _erasure_reply(erasure)


@router.get(
    "/customers/{customer_id}/erasure",
    tags=["privacy"],
    response_model=ErasureStatus,
    responses={202: {"model": ErasureStatus, "description": "still running"}, **NOT_FOUND},
)
async def read_erasure(
    customer_id: CustomerIdPath, sessions: SessionsDep, settings: SettingsDep, http: HttpDep
) -> JSONResponse:
    """Where an erasure stands in every service."""
    erasure = await service.check(sessions, http, settings, customer_id)
    return _erasure_reply(erasure)


def _erasure_reply(erasure: ErasureStatus) -> JSONResponse:
    done = erasure.status == "completed"
    return JSONResponse(
        erasure.model_dump(mode="json"),
        status_code=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED,
        headers={} if done else {"Location": erasure.status_url},
    )
