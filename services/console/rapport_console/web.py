"""What every page shares: templates, the logged-in operator, role checks, CSRF, the database."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.audit import store as audit_log
from rapport_console.audit.models import Action
from rapport_console.clients import ServiceClients
from rapport_console.operators import store as operator_store
from rapport_console.operators.models import Operator
from rapport_console.operators.service import Directory
from rapport_console.operators.sessions import CSRF_FIELD, CSRF_HEADER, SessionCodec, same_token
from rapport_console.roles import ROLE_LABELS, Permission, may
from rapport_events.db import read_transaction, transaction

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals["ROLE_LABELS"] = ROLE_LABELS
TEMPLATES.env.globals["Permission"] = Permission

# The id of a customer, segment, campaign or partner in a page's path: what the services
# accept, so a malformed one is refused here (422) before any call is made.
EntityId = Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class LoginRequired(Exception):
    """No valid session: the operator is sent to the login page."""


class Forbidden(Exception):
    """The operator's role may not see this page or do this."""

    def __init__(self, operator: Operator, permission: Permission | str) -> None:
        super().__init__(f"{operator.role} may not {permission}")
        self.operator = operator
        self.permission = permission


class CsrfRejected(Exception):
    """A form came without its session's CSRF token."""


async def current_operator(request: Request) -> Operator:
    """The logged-in operator, or LoginRequired."""
    codec: SessionCodec = request.app.state.sessions
    directory: Directory = request.app.state.operators
    session = codec.read(request.cookies.get("rapport_console_session"))
    operator = (
        await operator_store.find(directory, request.app.state.sessionmaker, session.username)
        if session
        else None
    )
    if session is None or operator is None:
        raise LoginRequired()
    request.state.operator = operator
    request.state.csrf_token = session.csrf_token
    return operator


OperatorDep = Annotated[Operator, Depends(current_operator)]


def require(permission: Permission) -> Any:
    """A dependency: the operator, when their role has `permission`."""

    # Async, as every dependency here: FastAPI runs a plain `def` in its thread pool, a
    # thread hop per request for a dictionary look-up.
    async def _check(operator: OperatorDep) -> Operator:
        if not may(operator.role, permission):
            raise Forbidden(operator, permission)
        return operator

    return Depends(_check)


async def _check_csrf(request: Request) -> None:
    """The session's CSRF token must come back, in the form or the header."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not same_token(request.state.csrf_token, given):
        raise CsrfRejected()


async def checked_form(request: Request, operator: OperatorDep) -> Operator:
    """For every POST: the session's CSRF token must come back, in the form or the header."""
    await _check_csrf(request)
    return operator


CheckedFormDep = Annotated[Operator, Depends(checked_form)]


@dataclass(frozen=True)
class AuditedForm:
    """The audited action a form attempts, and the path parameter or form field naming what
    it is on; noted before the form's checks, so that a refusal by any of them is recorded."""

    action: Action
    target: str


def require_form(permission: Permission, action: Action | None = None, target: str = "") -> Any:
    """A dependency for a form post: its CSRF token checked, then the role's `permission`.

    With an `action`, a refusal before the page runs (the token, the role, or invalid input
    that the error handlers answer) goes to the audit log, on the path parameter or form
    field named `target`.
    """

    async def _check(request: Request, operator: OperatorDep) -> Operator:
        if action is not None:
            request.state.audited_form = AuditedForm(action, target)
        await _check_csrf(request)
        if not may(operator.role, permission):
            await audit_refusal(request, 403, f"may not {permission}")
            raise Forbidden(operator, permission)
        return operator

    return Depends(_check)


async def audit_refusal(request: Request, status_code: int, reason: str) -> None:
    """Record that an audited form was refused before its page ran (nothing if the request
    was no audited form of a logged-in operator)."""
    audited: AuditedForm | None = getattr(request.state, "audited_form", None)
    operator: Operator | None = getattr(request.state, "operator", None)
    if audited is None or operator is None:
        return
    named = request.path_params.get(audited.target) or (await request.form()).get(audited.target)
    refusal = audit_log.entry(
        operator, audited.action, named if isinstance(named, str) else "", status_code, reason
    )
    # In a transaction of its own: the page's transaction rolls back with the refusal.
    await audit_log.write(request.app.state.sessionmaker, refusal)


async def clients(request: Request) -> ServiceClients:
    """The app's clients of the services (their connections are reused)."""
    return request.app.state.clients  # type: ignore[no-any-return]


ClientsDep = Annotated[ServiceClients, Depends(clients)]


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A transaction of the console's database, committed when the page is built."""
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with read_transaction(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the transaction commits before the response is sent, so the page a
# redirect leads to reads the change (by default FastAPI ends a yield dependency after
# the response, and a quick browser could read the state from before the form).
WriteSessionDep = Annotated[AsyncSession, Depends(write_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(read_session, scope="function")]


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """A page, with the operator, their permissions and the CSRF token in its context."""
    operator: Operator | None = getattr(request.state, "operator", None)

    def can(permission: Permission) -> bool:
        return operator is not None and may(operator.role, permission)

    base: dict[str, Any] = {
        "operator": operator,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "can": can,
        "partial": False,
        "unavailable": {},
    }
    return TEMPLATES.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status_code
    )


def refusal(answer: dict[str, Any]) -> str:
    """The message of a service's 4xx answer ({"error": ..., "status": ...})."""
    error = answer.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def form_error(request: Request, message: str, status_code: int = 400) -> HTMLResponse:
    """A form that cannot be carried out: the page says why, with a 4xx status."""
    return render(request, "error.html", {"message": message}, status_code)


def refused(request: Request, action: str, answer: dict[str, Any]) -> HTMLResponse:
    """A service said no to a form: its reason, with its 404 or 409, else 400."""
    status = answer.get("status")
    code = status if status in (404, 409) else 400
    return form_error(request, f"{action}: {refusal(answer)}", code)


def login_redirect(request: Request) -> Response:
    """To the login page, back here afterwards (htmx follows HX-Redirect, not a 303)."""
    target = "/login?next=" + quote(
        request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe=""
    )
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@dataclass(frozen=True)
class Audited:
    """One privileged form's action, recorded in the audit log in the page's transaction."""

    db: AsyncSession
    operator: Operator
    action: Action
    target: str

    def record(self, status_code: int, detail: str = "") -> None:
        """Record how the action ended: done, refused or failed, by its status."""
        audit_log.record(self.db, self.operator, self.action, self.target, status_code, detail)

    def done(self, response: Response, detail: str = "") -> Response:
        """The answer of a done action, recorded."""
        self.record(response.status_code, detail)
        return response

    def error(self, request: Request, message: str, status_code: int = 400) -> HTMLResponse:
        """A form error (see `form_error`), recorded with its message."""
        self.record(status_code, message)
        return form_error(request, message, status_code)

    def refused(self, request: Request, action: str, answer: dict[str, Any]) -> HTMLResponse:
        """A service's refusal (see `refused`), recorded with its reason."""
        response = refused(request, action, answer)
        self.record(response.status_code, f"{action}: {refusal(answer)}")
        return response
