"""What every service's routes ask for alike: the request's transaction, the session
factory, the bearer token. A service's own `deps` re-exports them beside its own."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.db import (
    SessionFactory,
    request_transaction,
    transaction,
)
from rapport_events.http import bearer_auth
from rapport_events.runtime import EventRuntime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (read-only for GET and HEAD): commit, or roll back on error."""
    async with request_transaction(request.app.state.runtime.sessions, request.method) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A write transaction whatever the method, for the GET routes that record something."""
    async with transaction(request.app.state.runtime.sessions) as session:
        yield session


def get_sessions(request: Request) -> SessionFactory:
    """The session factory, for routes that call peers: no transaction is open while they wait."""
    runtime: EventRuntime = request.app.state.runtime
    return runtime.sessions


# The service's own token, from its settings on the app.
require_token = bearer_auth(lambda request: str(request.app.state.settings.api_token))

# scope="function" commits before the response is sent, so a failed commit is a 500,
# not a success reply for writes that never happened.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[AsyncSession, Depends(get_write_session, scope="function")]
SessionsDep = Annotated[SessionFactory, Depends(get_sessions)]
