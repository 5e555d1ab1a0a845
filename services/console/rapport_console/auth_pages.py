"""Logging in and out."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console import accounts
from rapport_console.operators import Directory, LoginLimiter
from rapport_console.sessions import LOGIN_COOKIE, SessionCodec, same_token
from rapport_console.web import CheckedFormDep, render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only, never another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/customers"


def _login_page(request: Request, error: str | None, status_code: int, next_url: str) -> Response:
    codec: SessionCodec = request.app.state.sessions
    token = secrets.token_urlsafe(32)
    context = {"error": error, "next": next_url, "login_token": token}
    response = render(request, "login.html", context, status_code=status_code)
    codec.keep_login_token(response, token)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    """The login form."""
    return _login_page(request, None, 200, safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/customers",
) -> Response:
    """Check the password (argon2) within the login rate limit and start a session."""
    codec: SessionCodec = request.app.state.sessions
    expected = codec.login_token(request.cookies.get(LOGIN_COOKIE))
    if expected is None or not same_token(expected, csrf_token):
        return _login_page(request, "The form expired: please log in again.", 400, safe_next(next))
    limiter: LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{username.lower()}", f"client:{client}")
    if limiter.blocked(*keys):
        return _login_page(
            request, "Too many failed logins: wait a few minutes.", 429, safe_next(next)
        )
    directory: Directory = request.app.state.operators
    operator = await accounts.authenticate(
        directory, request.app.state.sessionmaker, username, password
    )
    if operator is None:
        limiter.failed(*keys)
        return _login_page(request, "Wrong user name or password.", 401, safe_next(next))
    limiter.succeeded(*keys)
    response = RedirectResponse(safe_next(next), status_code=303)
    codec.start(response, operator.username)
    return response


@router.post("/logout")
async def logout(request: Request, _operator: CheckedFormDep) -> Response:
    """End the session."""
    response = RedirectResponse("/login", status_code=303)
    request.app.state.sessions.end(response)
    return response
