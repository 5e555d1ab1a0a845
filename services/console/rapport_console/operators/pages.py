"""Logging in and out; and operators, for admins: every account (configured in
CONSOLE_OPERATORS or created here), creating one with its password hashed by argon2id as
`python -m rapport_console.operators` does, and disabling one created here or enabling it
again; each attempt goes to the audit log."""

import re
import secrets
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console.audit import store as audit_log
from rapport_console.audit.models import Action
from rapport_console.operators import store
from rapport_console.operators.models import Operator, OperatorRecord
from rapport_console.operators.service import (
    MIN_PASSWORD_LENGTH,
    Directory,
    LoginLimiter,
    hash_password,
)
from rapport_console.operators.sessions import LOGIN_COOKIE, SessionCodec, same_token
from rapport_console.roles import Permission, Role
from rapport_console.web import (
    Audited,
    CheckedFormDep,
    WriteSessionDep,
    render,
    require,
    require_form,
)
from rapport_events.db import read_transaction

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
    operator = await store.authenticate(
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


Admin = Annotated[Operator, require(Permission.manage_operators)]
Creator = Annotated[
    Operator, require_form(Permission.manage_operators, Action.operator_create, "username")
]
Disabler = Annotated[
    Operator, require_form(Permission.manage_operators, Action.operator_disable, "username")
]
Enabler = Annotated[
    Operator, require_form(Permission.manage_operators, Action.operator_enable, "username")
]
USERNAME = r"^[A-Za-z0-9._@-]+$"  # as OperatorAccount allows in CONSOLE_OPERATORS
Username = Annotated[str, Path(min_length=1, max_length=64, pattern=USERNAME)]
PAGE = "/admin/operators"


@router.get(PAGE, response_class=HTMLResponse)
async def operators_page(request: Request, _admin: Admin) -> Response:
    """Every operator, with its role, where it comes from and whether it is disabled."""
    return render(request, "operators.html", await _listing(request))


async def _listing(request: Request, **extra: Any) -> dict[str, Any]:
    directory: Directory = request.app.state.operators
    configured = [directory.get(name) for name in directory.usernames()]
    async with read_transaction(request.app.state.sessionmaker) as db:
        created = [r for r in await store.stored(db) if directory.get(r.username) is None]
    return {
        "configured": [o for o in configured if o is not None],
        "created": created,
        "roles": list(Role),
        "min_password": MIN_PASSWORD_LENGTH,
        "form": {"username": "", "role": ""},
        **extra,
    }


def _problem(username: str, role: str, password: str) -> str | None:
    """What is wrong with a new account, if anything."""
    if not re.fullmatch(USERNAME, username):
        return "a user name is letters, digits and . _ @ - only"
    if role not in Role.__members__:
        return f"the role is one of {', '.join(Role)}"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    return None


@router.post(PAGE, response_class=HTMLResponse)
async def create_operator(
    request: Request,
    admin: Creator,
    username: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Create an operator; the password is kept only as its argon2id hash."""
    username = username.strip()
    problem, status_code = _problem(username, role, password), 400
    if problem is None:
        if await _created(request, username, role, password, admin):
            return RedirectResponse(PAGE, status_code=303)
        problem, status_code = f"there is already an operator {username}", 409
    refusal = audit_log.entry(admin, Action.operator_create, username, status_code, problem)
    await audit_log.write(request.app.state.sessionmaker, refusal)
    form = {"username": username, "role": role}
    context = await _listing(request, problem=f"Not created: {problem}.", form=form)
    return render(request, "operators.html", context, status_code)


async def _created(
    request: Request, username: str, role: str, password: str, admin: Operator
) -> bool:
    """Store the account and its audit entry, unless the name is taken (configured or
    stored, even disabled)."""
    if request.app.state.operators.get(username) is not None:
        return False
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    password_hash = await to_thread.run_sync(hash_password, password)
    record = OperatorRecord(
        username=username, role=role, password_hash=password_hash, created_by=admin.username
    )
    done = audit_log.entry(admin, Action.operator_create, username, 303, f"role {role}")
    return await store.create(request.app.state.sessionmaker, record, done)


@router.post(PAGE + "/{username}/disable", response_class=HTMLResponse)
async def disable_operator(
    request: Request, username: Username, db: WriteSessionDep, admin: Disabler
) -> Response:
    """Disable an operator created here: logged out at once, the name never reused."""
    log = Audited(db, admin, Action.operator_disable, username)
    if request.app.state.operators.get(username) is not None:
        message = f"Not disabled: {username} is configured in CONSOLE_OPERATORS; remove it there."
        return log.error(request, message)
    if username == admin.username:
        return log.error(request, "Not disabled: you cannot disable your own account.")
    if await store.disable(db, username, admin.username) is None:
        return log.error(request, f"Not disabled: there is no operator {username}.", 404)
    return log.done(RedirectResponse(PAGE, status_code=303))


@router.post(PAGE + "/{username}/enable", response_class=HTMLResponse)
async def enable_operator(
    request: Request, username: Username, db: WriteSessionDep, admin: Enabler
) -> Response:
    """Enable an operator disabled here again: they log in with the role they had."""
    log = Audited(db, admin, Action.operator_enable, username)
    if request.app.state.operators.get(username) is not None:
        message = f"Not enabled: {username} is configured in CONSOLE_OPERATORS; change it there."
        return log.error(request, message)
    if await store.enable(db, username) is None:
        return log.error(request, f"Not enabled: there is no operator {username}.", 404)
    return log.done(RedirectResponse(PAGE, status_code=303))
