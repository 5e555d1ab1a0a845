"""The audit log's page: the newest privileged actions, filtered by operator and action,
a page of entries at a time (admin and privacy officer)."""

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console import audit
from rapport_console.audit import Action
from rapport_console.operators import Operator
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
    found = await audit.recent(db, operator or None, action or None, before, audit.PAGE + 1)
    entries = found[: audit.PAGE]
    older = None
    if len(found) > audit.PAGE:
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
