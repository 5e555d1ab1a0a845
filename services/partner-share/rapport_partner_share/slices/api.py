"""The partner API's reads of the slices (under /partner/v1, X-API-Key): one customer by
ref, the changes feed, matches, the overlap of an audience, and contributed events."""

from typing import Annotated, Any

from fastapi import Query, status

from rapport_events.limits import PathId, SaneDatetime
from rapport_partner_share.deps import (
    Limit,
    PartnerDep,
    PartnerRequestDep,
    SettingsDep,
    UnitOfWorkDep,
    WriteUnitOfWorkDep,
    partner_api,
)
from rapport_partner_share.errors import UnknownRef, missing
from rapport_partner_share.slices import service
from rapport_partner_share.slices.models import (
    ContributedEvent,
    ContributionAccepted,
    HashedIdentifiers,
    MatchReply,
    OverlapReply,
    PartnerCustomer,
    PartnerCustomerPage,
)

partner_router = partner_api()

UNKNOWN_REF: dict[int | str, dict[str, Any]] = {
    404: {"description": "no consenting customer has this ref for you"}
}


@partner_router.get(
    "/customers/{ref}",
    response_model=PartnerCustomer,
    responses={**UNKNOWN_REF, 401: {"description": "missing, invalid or revoked key"}},
)
async def read_customer(
    ref: PathId, uow: WriteUnitOfWorkDep, request: PartnerRequestDep
) -> PartnerCustomer:
    """A customer by your ref: only the slices the customer consented to share with you."""
    try:
        return await service.read_customer(uow, request, ref)
    except UnknownRef as not_found:
        raise missing("customer with ref", not_found) from not_found


@partner_router.get("/customers", response_model=PartnerCustomerPage)
async def read_changed_customers(
    uow: WriteUnitOfWorkDep,
    request: PartnerRequestDep,
    changed_since: Annotated[
        SaneDatetime | None,
        Query(description="Only customers whose shared data changed after this"),
    ] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> PartnerCustomerPage:
    """Consenting customers whose shared data changed since a time, oldest change first."""
    customers, next_cursor = await service.read_changes(
        uow, request, changed_since=changed_since, cursor=cursor, limit=limit
    )
    return PartnerCustomerPage(customers=customers, next_cursor=next_cursor)


@partner_router.post("/match", response_model=MatchReply)
async def match_customers(
    body: HashedIdentifiers, uow: UnitOfWorkDep, request: PartnerRequestDep
) -> MatchReply:
    """Refs for SHA-256 hashes of normalised e-mails or phones of consenting customers."""
    return MatchReply(matches=await service.match(uow, request, body))


@partner_router.post("/overlap", response_model=OverlapReply)
async def audience_overlap(
    body: HashedIdentifiers, uow: UnitOfWorkDep, partner: PartnerDep, settings: SettingsDep
) -> OverlapReply:
    """How many of your hashed audience are consenting customers; small counts withheld."""
    return await service.overlap(uow, partner, body, settings.k_anonymity_threshold)


@partner_router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ContributionAccepted,
    responses=UNKNOWN_REF,
)
async def contribute_event(
    body: ContributedEvent, uow: UnitOfWorkDep, request: PartnerRequestDep
) -> ContributionAccepted:
    """Contribute an interaction about a consenting customer; it joins their timeline."""
    try:
        return await service.contribute_event(uow, request, body)
    except UnknownRef as not_found:
        raise missing("customer with ref", not_found) from not_found
