"""The two logs' pages (admin and privacy officer): the access log, who viewed which
customer's data; the audit log, the newest privileged actions, filtered by operator and
action, a page of entries at a time."""

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console.audit import access_log
from rapport_console.audit import store as audit_log
from rapport_console.audit.models import Action
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission
from rapport_console.web import ReadSessionDep, render, require

router = APIRouter(include_in_schema=False)

Auditor = Annotated[Operator, require(Permission.read_audit_log)]
PAGE = "/admin/audit"


@router.get(PAGE, response_class=HTMLResponse)
async def audit_page(
    request: Request,
    db: ReadSessionDep,
    _auditor: Auditor,
    operator: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[Action | Literal[""], Query()] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Who did what to which partner, operator, campaign or customer, newest first."""
    found = await audit_log.recent(db, operator or None, action or None, before, audit_log.PAGE + 1)
    entries = found[: audit_log.PAGE]
    older = None
    if len(found) > audit_log.PAGE:
        cursor = {"operator": operator, "action": action, "before": entries[-1].id}
        older = f"{PAGE}?{urlencode({k: v for k, v in cursor.items() if v})}"
    context = {
        "entries": entries,
        "actions": list(Action),
        "filter_operator": operator,
        "filter_action": action,
        "older": older,
    }
    return render(request, "audit_log.html", context)


@router.get("/access-log", response_class=HTMLResponse)
async def access_log_page(
    request: Request,
    db: ReadSessionDep,
    _officer: Annotated[Operator, require(Permission.read_access_log)],
    operator: Annotated[str, Query(max_length=64)] = "",
    customer: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Who viewed which customer's data, on which page, when (privacy officer, admin)."""
    if customer:
        entries = await access_log.of_customer(db, customer, limit=500)
    else:
        entries = await access_log.recent(db, operator or None, limit=500)
    return render(
        request,
        "access_log.html",
        {"entries": entries, "filter_operator": operator, "filter_customer": customer},
    )
