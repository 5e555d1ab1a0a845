"""Dependencies the routes ask for, and the router the partner API's routes hang on."""

import math
import re
import uuid
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
    status,
)
from fastapi.security import APIKeyHeader

from rapport_events.deps import SessionDep as SessionDep
from rapport_events.deps import WriteSessionDep as WriteSessionDep
from rapport_events.deps import require_token as require_token
from rapport_partner_share.partners import service
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.partners.ratelimit import RateLimiter, SharedRateLimiter
from rapport_partner_share.settings import Settings
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork, SqlPartnerShareUnitOfWork

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_unit_of_work(session: SessionDep, settings: SettingsDep) -> PartnerShareUnitOfWork:
    """The use cases' stores and outbox on the request's transaction."""
    return SqlPartnerShareUnitOfWork(session, settings.kafka.topic)


def get_write_unit_of_work(
    session: WriteSessionDep, settings: SettingsDep
) -> PartnerShareUnitOfWork:
    """The same on a write transaction whatever the method, for the partner API's reads,
    which record each disclosure."""
    return SqlPartnerShareUnitOfWork(session, settings.kafka.topic)


# scope="function", as the sessions they are built on: used up when the route returns.
UnitOfWorkDep = Annotated[PartnerShareUnitOfWork, Depends(get_unit_of_work, scope="function")]
WriteUnitOfWorkDep = Annotated[
    PartnerShareUnitOfWork, Depends(get_write_unit_of_work, scope="function")
]
Limit = Annotated[int, Query(ge=1, le=500)]

_api_key = APIKeyHeader(
    name="X-API-Key",
    scheme_name="partnerApiKey",
    auto_error=False,
    description="The partner's API key, shown once when the partner or a new key is created.",
)


def get_rate_limiter(request: Request) -> RateLimiter | SharedRateLimiter:
    return request.app.state.rate_limiter  # type: ignore[no-any-return]


async def current_partner(
    uow: UnitOfWorkDep,
    limiter: Annotated[RateLimiter | SharedRateLimiter, Depends(get_rate_limiter)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Partner:
    """The partner behind `X-API-Key`, within its rate limit."""
    challenge = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
    if not api_key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-API-Key", headers=challenge)
    partner = await service.authenticate(uow, api_key)
    if partner is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers=challenge
        )
    wait = await limiter.take(partner.id, partner.rate_limit_per_second, partner.rate_limit_burst)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit of {partner.rate_limit_per_second:g} requests/s exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return partner


PartnerDep = Annotated[Partner, Depends(current_partner)]


def request_id(
    response: Response,
    x_request_id: Annotated[
        str | None, Header(description="Your id for this request, echoed and audited")
    ] = None,
) -> str:
    """The caller's request id when it is well-formed, else a new one; echoed back."""
    value = x_request_id if x_request_id and REQUEST_ID.match(x_request_id) else str(uuid.uuid4())
    response.headers["X-Request-ID"] = value
    return value


def partner_request(
    partner: PartnerDep,
    settings: SettingsDep,
    request_id: Annotated[str, Depends(request_id)],
    purpose: Annotated[
        str | None,
        Query(max_length=64, description="One of the partner's registered purposes"),
    ] = None,
) -> service.PartnerRequest:
    """Who is asking, for what purpose, under which request id."""
    return service.PartnerRequest(
        partner=partner,
        purpose=service.resolve_purpose(partner, purpose),
        request_id=request_id,
        topic=settings.kafka.topic,
        ledger_key=settings.ledger_key,
    )


PartnerRequestDep = Annotated[service.PartnerRequest, Depends(partner_request)]


RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "over the partner's rate limit; retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}


def partner_api() -> APIRouter:
    """A router of the partner API: under /partner/v1, each route within the rate limit."""
    return APIRouter(prefix="/partner/v1", tags=["partner API"], responses=RATE_LIMITED)
