"""Dependencies the routes ask for."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.db import request_transaction
from rapport_events.http import bearer_auth
from rapport_sales.peers import ProfileClient
from rapport_sales.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (read-only for GET and HEAD): commit, or roll back on error."""
    async with request_transaction(request.app.state.runtime.sessions, request.method) as session:
        yield session


def get_profile(request: Request) -> ProfileClient:
    return request.app.state.profile  # type: ignore[no-any-return]


require_token = bearer_auth(lambda request: get_settings(request).api_token)

# scope="function" commits before the response is sent, so a failed commit is a 500,
# not a success reply for writes that never happened.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProfileDep = Annotated[ProfileClient, Depends(get_profile)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=256)]
OwnerFilter = Annotated[str | None, Query(max_length=128)]
