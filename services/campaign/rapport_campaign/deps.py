"""Dependencies the routes ask for."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.settings import Settings
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.worker import Worker
from rapport_events.db import request_transaction, transaction
from rapport_events.http import bearer_auth


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_tokens(request: Request) -> Tokens:
    return request.app.state.tokens  # type: ignore[no-any-return]


def get_worker(request: Request) -> Worker:
    return request.app.state.worker  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (read-only for GET and HEAD): commit, or roll back on error."""
    async with request_transaction(request.app.state.runtime.sessions, request.method) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A write transaction whatever the method, for the GET routes that record something."""
    async with transaction(request.app.state.runtime.sessions) as session:
        yield session


require_token = bearer_auth(lambda request: get_settings(request).api_token)

# scope="function" commits before the response is sent, so a failed commit is a 500,
# not a success reply for writes that never happened.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[AsyncSession, Depends(get_write_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TokensDep = Annotated[Tokens, Depends(get_tokens)]
WorkerDep = Annotated[Worker, Depends(get_worker)]
