"""Dependencies the routes ask for."""

import base64
import binascii
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.db import SessionFactory, request_transaction
from rapport_events.http import bearer_auth
from rapport_events.runtime import EventRuntime
from rapport_profile.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (read-only for GET and HEAD): commit, or roll back on error."""
    async with request_transaction(request.app.state.runtime.sessions, request.method) as session:
        yield session


def get_sessions(request: Request) -> SessionFactory:
    """The session factory, for routes that call peers: no transaction is open while they wait."""
    runtime: EventRuntime = request.app.state.runtime
    return runtime.sessions


def get_http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http  # type: ignore[no-any-return]


def write_key(request: Request) -> str:
    """The tracking API's write key: the HTTP Basic user (password empty), as Segment sends it."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    key = ""
    if scheme.lower() == "basic" and encoded:
        try:
            key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing write key: send it as the HTTP Basic user with an empty password",
            headers={"WWW-Authenticate": 'Basic realm="tracking"'},
        )
    known = get_settings(request).write_keys
    if not any(secrets.compare_digest(key.encode(), k.encode()) for k in known):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid write key",
            headers={"WWW-Authenticate": 'Basic realm="tracking"'},
        )
    return key


require_token = bearer_auth(lambda request: get_settings(request).api_token)

# scope="function" commits before the response is sent, so a failed commit is a 500,
# not a success reply for writes that never happened.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionsDep = Annotated[SessionFactory, Depends(get_sessions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
WriteKeyDep = Annotated[str, Depends(write_key)]
