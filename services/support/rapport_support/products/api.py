"""The products routes: known issues of a product model."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport_support.deps import ReadUnitOfWorkDep, SettingsDep, require_token
from rapport_support.products import service
from rapport_support.products.models import KnownIssues

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/products/{product_model:path}/known-issues", response_model=KnownIssues, tags=["products"]
)
async def known_issues(
    product_model: str,
    uow: ReadUnitOfWorkDep,
    settings: SettingsDep,
    text: Annotated[
        str | None, Query(max_length=5_000, description="a new problem, to find similar tickets")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> KnownIssues:
    """The model's most frequent ticket categories and their resolutions; similar tickets."""
    return await service.known_issues(uow, settings, product_model, text, limit)
