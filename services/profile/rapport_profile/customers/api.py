"""Customer routes: parse, call the service, shape the reply."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, status
from fastapi.responses import JSONResponse

from rapport_events.limits import CustomerIdPath
from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics.service import UnknownTier
from rapport_profile.customers import service
from rapport_profile.customers.models import (
    CustomerCreate,
    CustomerDetail,
    CustomerPage,
    CustomerPublic,
    CustomerUpdate,
)
from rapport_profile.deps import (
    SessionDep,
    UnitOfWorkDep,
    require_token,
)
from rapport_profile.errors import CONFLICT, NOT_FOUND

router = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/customers",
    tags=["customers"],
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerPublic,
    responses={
        409: {
            "description": "a customer with this e-mail or external id exists; its id is returned"
        },
        422: {"description": "invalid body, or an Idempotency-Key reused for another body"},
    },
)
async def create_customer(
    body: CustomerCreate,
    uow: UnitOfWorkDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> CustomerPublic | JSONResponse:
    """Register a customer and publish customer.registered; a retried Idempotency-Key replays."""
    key = fingerprint = None
    if idempotency_key:
        key = f"POST /customers {idempotency_key}"
        fingerprint = service.request_hash(body.model_dump(mode="json"))
        earlier = await service.replay(uow, key, fingerprint)
        if earlier is not None:
            return JSONResponse(earlier.body, status_code=earlier.status_code)
    customer = await service.register_customer(uow, body)
    reply = CustomerPublic.model_validate(customer)
    if key and fingerprint:
        service.remember(uow, key, fingerprint, 201, reply.model_dump(mode="json"), customer.id)
    return reply


@router.get("/customers", tags=["customers"], response_model=CustomerPage)
async def search_customers(
    session: SessionDep,
    email: Annotated[str | None, Query(max_length=320)] = None,
    q: Annotated[str | None, Query(max_length=200, description="words of the name")] = None,
    phone: Annotated[
        str | None, Query(max_length=16, description="E.164, like +14155550100")
    ] = None,
    external_id: Annotated[
        str | None,
        Query(
            max_length=300, pattern=r"^[^:]{1,64}:.+$", description="`system:id`, like shop:c-1815"
        ),
    ] = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    segment: Annotated[str | None, Query(max_length=200, description="segment id or name")] = None,
    tier: Annotated[str | None, Query(description="platinum, gold, silver, bronze or none")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CustomerPage:
    """Find customers by exact e-mail, phone or external id, words of the name, country,
    segment or tier."""
    if tier is not None and tier not in analytics_service.TIER_NAMES:
        raise UnknownTier(f"tier must be one of {', '.join(analytics_service.TIER_NAMES)}")
    found, next_cursor = await service.search_customers(
        session,
        email=email,
        phone=phone,
        external_id=external_id,
        text=q,
        country=country,
        segment=segment,
        tier=tier,
        limit=limit,
        cursor=cursor,
    )
    return CustomerPage(
        items=[CustomerPublic.model_validate(c) for c in found], next_cursor=next_cursor
    )


@router.get(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=CustomerDetail,
    responses=NOT_FOUND,
)
async def read_customer(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> CustomerDetail:
    """One customer by id, with custom traits and accounts (a merged one shows `merged_into`)."""
    return await service.customer_detail(uow, customer_id)


@router.patch(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=CustomerPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_customer(
    customer_id: CustomerIdPath, body: CustomerUpdate, uow: UnitOfWorkDep
) -> CustomerPublic:
    """Change some attributes and publish customer.updated with what changed."""
    customer = await service.update_customer(uow, customer_id, body.changes())
    return CustomerPublic.model_validate(customer)
