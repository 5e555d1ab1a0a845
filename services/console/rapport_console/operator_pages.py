"""Operators, for admins: every account (configured in CONSOLE_OPERATORS or created here),
creating one with its password hashed by argon2id as `python -m rapport_console.operators`
does, and disabling one created here or enabling it again; each attempt goes to the audit
log."""

import re
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console import accounts, audit
from rapport_console.accounts import OperatorRecord
from rapport_console.audit import Action
from rapport_console.operators import MIN_PASSWORD_LENGTH, Directory, Operator, hash_password
from rapport_console.roles import Permission, Role
from rapport_console.web import Audited, WriteSessionDep, render, require, require_form
from rapport_events.db import read_transaction

router = APIRouter(include_in_schema=False)

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
        created = [r for r in await accounts.stored(db) if directory.get(r.username) is None]
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
    refusal = audit.entry(admin, Action.operator_create, username, status_code, problem)
    await audit.write(request.app.state.sessionmaker, refusal)
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
    done = audit.entry(admin, Action.operator_create, username, 303, f"role {role}")
    return await accounts.create(request.app.state.sessionmaker, record, done)


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
    if await accounts.disable(db, username, admin.username) is None:
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
    if await accounts.enable(db, username) is None:
        return log.error(request, f"Not enabled: there is no operator {username}.", 404)
    return log.done(RedirectResponse(PAGE, status_code=303))
