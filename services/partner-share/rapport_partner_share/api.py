"""Partner-share's HTTP routes: parse, call the service, shape the reply.

`router` is the admin API for internal callers (bearer token); `partner_router`
is the partner API under /partner/v1 (X-API-Key).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from rapport_events.limits import ID_PATTERN, CustomerIdPath, PathId, SaneDatetime
from rapport_partner_share import notices, service
from rapport_partner_share.deps import (
    PartnerDep,
    PartnerRequestDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
    get_rate_limiter,
    require_token,
)
from rapport_partner_share.models import (
    AcknowledgementCreate,
    ApiKeyCreated,
    ContributedEvent,
    ContributionAccepted,
    CustomerExport,
    DisclosurePage,
    HashedIdentifiers,
    KnownCustomerPublic,
    MatchReply,
    NotificationList,
    NotificationPublic,
    OverlapReply,
    PartnerCreate,
    PartnerCreated,
    PartnerCustomer,
    PartnerCustomerPage,
    PartnerList,
    PartnerPublic,
    SubjectLedger,
)
from rapport_partner_share.ratelimit import RateLimiter, SharedRateLimiter
from rapport_partner_share.security import SHA256_HEX

router = APIRouter(dependencies=[Depends(require_token)])
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "over the partner's rate limit; retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
}
partner_router = APIRouter(prefix="/partner/v1", tags=["partner API"], responses=RATE_LIMITED)

Limit = Annotated[int, Query(ge=1, le=500)]
NOT_FOUND = status.HTTP_404_NOT_FOUND


def _missing(what: str, error: LookupError) -> HTTPException:
    return HTTPException(NOT_FOUND, f"no {what} {error}")


# --- admin: partners ---------------------------------------------------------------


@router.post(
    "/partners",
    status_code=status.HTTP_201_CREATED,
    response_model=PartnerCreated,
    tags=["partners"],
)
async def create_partner(
    body: PartnerCreate, session: SessionDep, settings: SettingsDep
) -> PartnerCreated:
    """Register a partner; its API key and webhook secret are shown in this reply only."""
    registered = await service.register_partner(
        session,
        body,
        default_rate=settings.rate_limit_per_second,
        default_burst=settings.rate_limit_burst,
    )
    public = PartnerPublic.of(registered.partner, [registered.key])
    return PartnerCreated(
        **public.model_dump(),
        api_key=registered.api_key,
        webhook_secret=registered.partner.webhook_secret,
    )


@router.get("/partners", response_model=PartnerList, tags=["partners"])
async def list_partners(session: SessionDep) -> PartnerList:
    """Active partners, without secrets."""
    partners = await service.list_partners(session)
    return PartnerList(partners=[PartnerPublic.of(p, keys) for p, keys in partners])


@router.get(
    "/partners/{partner_id}",
    response_model=PartnerPublic,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def read_partner(partner_id: PathId, session: SessionDep) -> PartnerPublic:
    """One partner and its keys' metadata."""
    try:
        partner, keys = await service.get_partner(session, partner_id)
    except service.PartnerNotFound as missing:
        raise _missing("partner", missing) from missing
    return PartnerPublic.of(partner, keys)


@router.delete(
    "/partners/{partner_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def delete_partner(
    partner_id: PathId,
    session: SessionDep,
    limiter: Annotated[RateLimiter | SharedRateLimiter, Depends(get_rate_limiter)],
) -> Response:
    """End a partnership: keys revoked, shared slices deleted, the audit ledger kept."""
    try:
        await service.delete_partner(session, partner_id)
    except service.PartnerNotFound as missing:
        raise _missing("partner", missing) from missing
    await limiter.forget(partner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/partners/{partner_id}/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def rotate_key(partner_id: PathId, session: SessionDep) -> ApiKeyCreated:
    """Rotate: a new key (shown once) replaces every older key at once."""
    try:
        key, api_key = await service.rotate_api_key(session, partner_id)
    except service.PartnerNotFound as missing:
        raise _missing("partner", missing) from missing
    return ApiKeyCreated(id=key.id, api_key=api_key, hint=key.hint, created_at=key.created_at)


@router.delete(
    "/partners/{partner_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such partner or key"}},
    tags=["partners"],
)
async def revoke_key(partner_id: PathId, key_id: PathId, session: SessionDep) -> Response:
    """Revoke one key; requests with it get 401 from now on."""
    try:
        await service.revoke_api_key(session, partner_id, key_id)
    except service.PartnerNotFound as missing:
        raise _missing("partner", missing) from missing
    except service.ApiKeyNotFound as missing:
        raise _missing("key", missing) from missing
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- admin: audit, notices, customers ----------------------------------------------


@router.get("/disclosures", response_model=DisclosurePage, tags=["audit"])
async def list_disclosures(
    session: SessionDep,
    partner_id: str | None = None,
    customer_id: str | None = None,
    since: SaneDatetime | None = None,
    until: SaneDatetime | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> DisclosurePage:
    """The audit ledger, newest first: who was shown what, when, why, under which consent."""
    disclosures, next_cursor = await service.list_disclosures(
        session,
        partner_id=partner_id,
        customer_id=customer_id,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return DisclosurePage(disclosures=disclosures, next_cursor=next_cursor)


@router.get("/notifications", response_model=NotificationList, tags=["audit"])
async def list_notifications(
    session: SessionDep,
    partner_id: str | None = None,
    customer_id: str | None = None,
    pending: bool = False,
    limit: Limit = 100,
) -> NotificationList:
    """Deletion notices sent to partners, their delivery and acknowledgement."""
    notifications = await notices.list_notifications(
        session, partner_id=partner_id, customer_id=customer_id, pending_only=pending, limit=limit
    )
    return NotificationList(notifications=[NotificationPublic.of(n) for n in notifications])


@router.get(
    "/privacy/disclosures",
    response_model=SubjectLedger,
    responses={
        400: {"description": "neither or both of customer_id and subject, or a foreign cursor"}
    },
    tags=["audit"],
)
async def subject_disclosures(
    session: SessionDep,
    settings: SettingsDep,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    subject: Annotated[str | None, Query(pattern=SHA256_HEX.pattern)] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> SubjectLedger:
    """Which partners received a person's data and acknowledged their erasure notice; kept
    after erasure under a keyed pseudonym (give the id, or the pseudonym itself)."""
    return await service.subject_ledger(
        session,
        settings.ledger_key,
        customer_id=customer_id,
        subject=subject,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/customers/{customer_id}",
    response_model=KnownCustomerPublic,
    responses={404: {"description": "partner-share has not heard of this customer"}},
    tags=["customers"],
)
async def read_known_customer(
    customer_id: CustomerIdPath, session: SessionDep
) -> KnownCustomerPublic:
    """Whether partner-share knows a customer, and since when (admin)."""
    try:
        customer = await service.get_known_customer(session, customer_id)
    except service.CustomerNotFound as missing:
        raise _missing("customer", missing) from missing
    return KnownCustomerPublic.of(customer)


@router.get(
    "/customers/{customer_id}/disclosures", response_model=DisclosurePage, tags=["customers"]
)
async def list_customer_disclosures(
    customer_id: CustomerIdPath, session: SessionDep, cursor: str | None = None, limit: Limit = 100
) -> DisclosurePage:
    """Which partner was shown what about this customer, when and why, newest first."""
    disclosures, next_cursor = await service.list_disclosures(
        session, customer_id=customer_id, cursor=cursor, limit=limit
    )
    return DisclosurePage(disclosures=disclosures, next_cursor=next_cursor)


@router.get("/customers/{customer_id}/export", response_model=CustomerExport, tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, session: SessionDep) -> CustomerExport:
    """Everything partner-share holds about a customer (empty lists when nothing)."""
    return await service.export_customer(session, customer_id)


# --- the partner API ---------------------------------------------------------------

UNKNOWN_REF: dict[int | str, dict[str, Any]] = {
    404: {"description": "no consenting customer has this ref for you"}
}


@partner_router.get(
    "/customers/{ref}",
    response_model=PartnerCustomer,
    responses={**UNKNOWN_REF, 401: {"description": "missing, invalid or revoked key"}},
)
async def read_customer(
    ref: PathId, session: WriteSessionDep, request: PartnerRequestDep
) -> PartnerCustomer:
    """A customer by your ref: only the slices the customer consented to share with you."""
    try:
        return await service.read_customer(session, request, ref)
    except service.UnknownRef as missing:
        raise _missing("customer with ref", missing) from missing


@partner_router.get("/customers", response_model=PartnerCustomerPage)
async def read_changed_customers(
    session: WriteSessionDep,
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
        session, request, changed_since=changed_since, cursor=cursor, limit=limit
    )
    return PartnerCustomerPage(customers=customers, next_cursor=next_cursor)


@partner_router.post("/match", response_model=MatchReply)
async def match_customers(
    body: HashedIdentifiers, session: SessionDep, request: PartnerRequestDep
) -> MatchReply:
    """Refs for SHA-256 hashes of normalised e-mails or phones of consenting customers."""
    return MatchReply(matches=await service.match(session, request, body))


@partner_router.post("/overlap", response_model=OverlapReply)
async def audience_overlap(
    body: HashedIdentifiers, session: SessionDep, partner: PartnerDep, settings: SettingsDep
) -> OverlapReply:
    """How many of your hashed audience are consenting customers; small counts withheld."""
    return await service.overlap(session, partner, body, settings.k_anonymity_threshold)


@partner_router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ContributionAccepted,
    responses=UNKNOWN_REF,
)
async def contribute_event(
    body: ContributedEvent, session: SessionDep, request: PartnerRequestDep
) -> ContributionAccepted:
    """Contribute an interaction about a consenting customer; it joins their timeline."""
    try:
        return await service.contribute_event(session, request, body)
    except service.UnknownRef as missing:
        raise _missing("customer with ref", missing) from missing


@partner_router.get("/notifications", response_model=NotificationList)
async def read_notifications(
    session: SessionDep, partner: PartnerDep, pending: bool = True, limit: Limit = 100
) -> NotificationList:
    """Deletion notices for you (the same ones your webhook receives)."""
    notifications = await notices.partner_notifications(
        session, partner, pending_only=pending, limit=limit
    )
    return NotificationList(notifications=[NotificationPublic.of(n) for n in notifications])


@partner_router.post(
    "/acknowledgements",
    response_model=NotificationPublic,
    responses={404: {"description": "you have no notice with this id"}},
)
async def acknowledge_notification(
    body: AcknowledgementCreate, session: SessionDep, partner: PartnerDep
) -> NotificationPublic:
    """Confirm that you deleted what a notice asked you to delete."""
    try:
        notification = await notices.acknowledge(session, partner, body.notification_id)
    except notices.NotificationNotFound as missing:
        raise _missing("notification", missing) from missing
    return NotificationPublic.of(notification)
