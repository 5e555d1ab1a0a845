"""The accounts routes: companies, their contacts, their activities and their timeline."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from rapport_events.limits import CustomerIdPath, PathId
from rapport_sales.accounts import service, timeline
from rapport_sales.accounts.models import (
    AccountCreate,
    AccountPublic,
    AccountTimeline,
    AccountUpdate,
    ContactLink,
)
from rapport_sales.activities import service as activities
from rapport_sales.activities.models import ActivityPublic
from rapport_sales.deps import (
    Cursor,
    Limit,
    OwnerFilter,
    ProfileDep,
    SettingsDep,
    UnitOfWorkDep,
    require_token,
)
from rapport_sales.shared import Page

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/accounts", status_code=201, tags=["accounts"])
async def create_account(
    body: AccountCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> AccountPublic:
    """Open an account (a company) with its domain, industry, size and owner."""
    return await service.create_account(uow, body)


@router.get("/accounts", tags=["accounts"])
async def list_accounts(
    uow: UnitOfWorkDep,
    owner: OwnerFilter = None,
    q: Annotated[str | None, Query(max_length=200, description="in the name or domain")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AccountPublic]:
    """Accounts newest first, by owner or by a piece of the name or domain."""
    return await service.list_accounts(uow, owner, q, limit, cursor)


@router.get("/accounts/{account_id}", tags=["accounts"])
async def read_account(account_id: PathId, uow: UnitOfWorkDep) -> AccountPublic:
    """The account and its contacts."""
    return await service.account_view(uow, await service.get_account(uow, account_id))


@router.patch("/accounts/{account_id}", tags=["accounts"])
async def update_account(
    account_id: PathId, body: AccountUpdate, uow: UnitOfWorkDep
) -> AccountPublic:
    """Change the account's name, domain, industry, size or owner."""
    return await service.update_account(uow, account_id, body)


@router.put("/accounts/{account_id}/contacts/{customer_id}", tags=["accounts"])
async def link_contact(
    account_id: PathId,
    customer_id: CustomerIdPath,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    body: ContactLink | None = None,
) -> AccountPublic:
    """Make a customer (known to profile) a contact of the account, with a role."""
    role = body.role if body else None
    return await service.link_contact(uow, account_id, customer_id, role)


@router.delete("/accounts/{account_id}/contacts/{customer_id}", status_code=204, tags=["accounts"])
async def unlink_contact(
    account_id: PathId, customer_id: CustomerIdPath, uow: UnitOfWorkDep
) -> Response:
    """The customer is no longer a contact of the account."""
    await service.unlink_contact(uow, account_id, customer_id)
    return Response(status_code=204)


@router.get("/accounts/{account_id}/activities", tags=["accounts", "activities"])
async def account_activities(
    account_id: PathId,
    uow: UnitOfWorkDep,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ActivityPublic]:
    """The account's activities and its contacts', newest first."""
    return await activities.list_activities(
        uow, account_id=account_id, customer_id=None, kind=kind, limit=limit, cursor=cursor
    )


@router.get("/accounts/{account_id}/timeline", tags=["accounts"])
async def account_timeline(
    account_id: PathId, uow: UnitOfWorkDep, profile: ProfileDep, limit: Limit = 50
) -> AccountTimeline:
    """Everything about the account: its activity, its deals' stages and its contacts'
    timelines in profile, newest first (`complete` is false when profile did not answer)."""
    return await timeline.account_timeline(uow, profile, account_id, limit)
