"""Dependencies the routes ask for."""

from typing import Annotated

from fastapi import Depends, Query, Request

from rapport_events.deps import SessionDep as SessionDep
from rapport_events.deps import require_token as require_token
from rapport_sales.peers import ProfileClient
from rapport_sales.settings import Settings
from rapport_sales.unit_of_work import SalesUnitOfWork, SqlSalesUnitOfWork


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_profile(request: Request) -> ProfileClient:
    return request.app.state.profile  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_unit_of_work(session: SessionDep, settings: SettingsDep) -> SalesUnitOfWork:
    """The use cases' stores and outbox on the request's transaction."""
    return SqlSalesUnitOfWork(session, settings.kafka.topic)


# scope="function", as the session it is built on: it is used up when the route returns.
UnitOfWorkDep = Annotated[SalesUnitOfWork, Depends(get_unit_of_work, scope="function")]
ProfileDep = Annotated[ProfileClient, Depends(get_profile)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=256)]
OwnerFilter = Annotated[str | None, Query(max_length=128)]
