"""Privacy: export everything held about a customer (a download) and erase them, with a
confirmation, showing each service's completion. Profile runs both across the services.
An export is a view (the access log); an erasure is that and an action (the audit log)."""

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console.audit import access_log
from rapport_console.audit.models import Action
from rapport_console.clients import Call, ServiceUnavailable
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission
from rapport_console.web import (
    Audited,
    ClientsDep,
    EntityId,
    WriteSessionDep,
    render,
    require,
    require_form,
)

router = APIRouter(include_in_schema=False)

PrivacyOfficer = Annotated[Operator, require(Permission.export_and_erase)]
Eraser = Annotated[
    Operator, require_form(Permission.export_and_erase, Action.customer_erase, "customer_id")
]
# An export or an erasure asks every service in turn, through profile: longer than a page.
GATHER_TIMEOUT_S = 30.0


@router.get("/customers/{customer_id}/export")
async def export_download(
    request: Request,
    customer_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: PrivacyOfficer,
) -> Response:
    """Everything every service holds about the customer, as a JSON download."""
    path = f"/customers/{quote(customer_id, safe='')}/export"
    try:
        export = await clients.get_slow(Call("profile", path), GATHER_TIMEOUT_S)
    except ServiceUnavailable as error:
        return render(request, "error.html", {"message": f"Export failed: {error}."}, 503)
    if export is None:
        return render(request, "not_found.html", {"customer_id": customer_id}, 404)
    access_log.record(db, operator.username, operator.role, customer_id, "export")
    return Response(
        json.dumps(export, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="customer-{customer_id}.json"'},
    )


@router.post("/customers/{customer_id}/erase", response_class=HTMLResponse)
async def erase(
    request: Request,
    customer_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Eraser,
    confirm: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Erase the customer everywhere, once the operator typed the customer's id to confirm."""
    log = Audited(db, operator, Action.customer_erase, customer_id)
    if confirm.strip() != customer_id:
        return log.error(request, "Not erased: type the customer's id to confirm.")
    try:
        status = await clients.delete(
            "profile", f"/customers/{quote(customer_id, safe='')}", GATHER_TIMEOUT_S
        )
    except ServiceUnavailable as error:
        return log.error(request, f"Not erased: {error}.", 503)
    if "error" in status:
        log.record(404, "Not erased: no such customer.")
        return render(request, "not_found.html", {"customer_id": customer_id}, 404)
    access_log.record(db, operator.username, operator.role, customer_id, "erase")
    page = render(request, "erasure.html", {"customer_id": customer_id, "erasure": status})
    return log.done(page)


@router.get("/customers/{customer_id}/erasure", response_class=HTMLResponse)
async def erasure_status(
    request: Request, customer_id: EntityId, clients: ClientsDep, _operator: PrivacyOfficer
) -> Response:
    """Where an erasure stands in each service (the part the erasure page polls)."""
    fanout = await clients.fan_out(
        {"erasure": Call("profile", f"/customers/{quote(customer_id, safe='')}/erasure")}
    )
    erasure: Any = fanout.get("erasure")
    context = {
        "customer_id": customer_id,
        "erasure": erasure,
        **fanout.availability(),
    }
    return render(request, "_erasure_status.html", context)
