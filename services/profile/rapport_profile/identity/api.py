"""Merge and unmerge routes."""

from fastapi import APIRouter, Depends

from rapport_events.limits import CustomerIdPath
from rapport_profile.deps import (
    UnitOfWorkDep,
    require_token,
)
from rapport_profile.errors import CONFLICT, NOT_FOUND
from rapport_profile.identity import service
from rapport_profile.identity.models import MergePublic, MergeRequest

router = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/customers/{customer_id}/merge",
    tags=["identity"],
    response_model=MergePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def merge_customer(
    customer_id: CustomerIdPath, body: MergeRequest, uow: UnitOfWorkDep
) -> MergePublic:
    """Fold a duplicate into this customer; publishes customer.merged."""
    merge = await service.merge(
        uow, customer_id, body.merged_customer_id, reason="manual", actor=body.actor
    )
    return MergePublic.model_validate(merge)


@router.post(
    "/customers/{customer_id}/unmerge",
    tags=["identity"],
    response_model=MergePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def unmerge_customer(
    customer_id: CustomerIdPath, body: MergeRequest, uow: UnitOfWorkDep
) -> MergePublic:
    """Undo a wrong merge: the duplicate comes back with its own history and consents."""
    merge = await service.unmerge(uow, customer_id, body.merged_customer_id, actor=body.actor)
    return MergePublic.model_validate(merge)
