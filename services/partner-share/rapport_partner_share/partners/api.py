"""The partners routes (admin): register partners, show them, end a partnership, and
rotate or revoke their API keys."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from rapport_events.limits import PathId
from rapport_partner_share.deps import (
    SettingsDep,
    UnitOfWorkDep,
    get_rate_limiter,
    require_token,
)
from rapport_partner_share.errors import ApiKeyNotFound, PartnerNotFound, missing
from rapport_partner_share.partners import service
from rapport_partner_share.partners.models import (
    ApiKeyCreated,
    PartnerCreate,
    PartnerCreated,
    PartnerList,
    PartnerPublic,
)
from rapport_partner_share.partners.ratelimit import RateLimiter, SharedRateLimiter

router = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/partners",
    status_code=status.HTTP_201_CREATED,
    response_model=PartnerCreated,
    tags=["partners"],
)
async def create_partner(
    body: PartnerCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> PartnerCreated:
    """Register a partner; its API key and webhook secret are shown in this reply only."""
    registered = await service.register_partner(
        uow,
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
async def list_partners(uow: UnitOfWorkDep) -> PartnerList:
    """Active partners, without secrets."""
    partners = await service.list_partners(uow)
    return PartnerList(partners=[PartnerPublic.of(p, keys) for p, keys in partners])


@router.get(
    "/partners/{partner_id}",
    response_model=PartnerPublic,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def read_partner(partner_id: PathId, uow: UnitOfWorkDep) -> PartnerPublic:
    """One partner and its keys' metadata."""
    try:
        partner, keys = await service.get_partner(uow, partner_id)
    except PartnerNotFound as not_found:
        raise missing("partner", not_found) from not_found
    return PartnerPublic.of(partner, keys)


@router.delete(
    "/partners/{partner_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def delete_partner(
    partner_id: PathId,
    uow: UnitOfWorkDep,
    limiter: Annotated[RateLimiter | SharedRateLimiter, Depends(get_rate_limiter)],
) -> Response:
    """End a partnership: keys revoked, shared slices deleted, the audit ledger kept."""
    try:
        await service.delete_partner(uow, partner_id)
    except PartnerNotFound as not_found:
        raise missing("partner", not_found) from not_found
    await limiter.forget(partner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/partners/{partner_id}/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses={404: {"description": "no active partner with this id"}},
    tags=["partners"],
)
async def rotate_key(partner_id: PathId, uow: UnitOfWorkDep) -> ApiKeyCreated:
    """Rotate: a new key (shown once) replaces every older key at once."""
    try:
        key, api_key = await service.rotate_api_key(uow, partner_id)
    except PartnerNotFound as not_found:
        raise missing("partner", not_found) from not_found
    return ApiKeyCreated(id=key.id, api_key=api_key, hint=key.hint, created_at=key.created_at)


@router.delete(
    "/partners/{partner_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such partner or key"}},
    tags=["partners"],
)
async def revoke_key(partner_id: PathId, key_id: PathId, uow: UnitOfWorkDep) -> Response:
    """Revoke one key; requests with it get 401 from now on."""
    try:
        await service.revoke_api_key(uow, partner_id, key_id)
    except PartnerNotFound as not_found:
        raise missing("partner", not_found) from not_found
    except ApiKeyNotFound as not_found:
        raise missing("key", not_found) from not_found
    return Response(status_code=status.HTTP_204_NO_CONTENT)
