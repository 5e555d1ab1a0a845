"""Dependencies the routes ask for."""

import base64
import binascii
import secrets
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request, status

from rapport_events.deps import SessionDep as SessionDep
from rapport_events.deps import SessionsDep as SessionsDep
from rapport_events.deps import require_token as require_token
from rapport_profile.settings import Settings
from rapport_profile.unit_of_work import ProfileUnitOfWork, SqlProfileUnitOfWork


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http  # type: ignore[no-any-return]


def _basic_user(request: Request) -> str:
    """The HTTP Basic user of the request, "" when there is none."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return ""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def check_write_key(settings: Settings, key: object) -> str:
    """`key` if it is one of the write keys, else 401."""
    if not isinstance(key, str) or not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing write key: send it as the HTTP Basic user with an empty password, "
            "or as `writeKey` in the body",
            headers={"WWW-Authenticate": 'Basic realm="tracking"'},
        )
    if not any(secrets.compare_digest(key.encode(), k.encode()) for k in settings.write_keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid write key",
            headers={"WWW-Authenticate": 'Basic realm="tracking"'},
        )
    return key


def write_key(request: Request) -> str | None:
    """The tracking API's write key as the HTTP Basic user (password empty), as Segment sends
    it; None when the header has none, and the key must then be `writeKey` in the body."""
    key = _basic_user(request)
    return check_write_key(get_settings(request), key) if key else None


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_unit_of_work(session: SessionDep, settings: SettingsDep) -> ProfileUnitOfWork:
    """The domains' stores and the outbox, on the request's session."""
    return SqlProfileUnitOfWork(session, settings.kafka.topic)


# Function scope, as the session's: the unit of work is the session's, and the session is
# committed when the route returns, before the reply is sent.
UnitOfWorkDep = Annotated[ProfileUnitOfWork, Depends(get_unit_of_work, scope="function")]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
WriteKeyDep = Annotated[str | None, Depends(write_key)]
