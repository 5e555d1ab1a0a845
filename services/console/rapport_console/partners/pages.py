"""Partners: the list, registering one (its API key and webhook secret shown once), each
partner's disclosure ledger, and ending a partnership after typing its name, through
partner-share's admin API. Registering and deleting go to the audit log."""

import re
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console.audit.models import Action
from rapport_console.clients import Call, ServiceUnavailable
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission
from rapport_console.web import (
    Audited,
    ClientsDep,
    EntityId,
    WriteSessionDep,
    refusal,
    render,
    require,
    require_form,
)

router = APIRouter(include_in_schema=False)

PartnerViewer = Annotated[Operator, require(Permission.view_partners)]
PartnerRegistrar = Annotated[
    Operator, require_form(Permission.manage_partners, Action.partner_register, "name")
]
PartnerManager = Annotated[
    Operator, require_form(Permission.manage_partners, Action.partner_delete, "partner_id")
]
SLICES = ("contact", "demographics", "purchase_summary", "segments", "loyalty")
LEDGER_PAGE = 100


@router.get("/partners", response_class=HTMLResponse)
async def partners_page(
    request: Request, clients: ClientsDep, _operator: PartnerViewer
) -> Response:
    """Every partner, and (for an admin) the form to register one."""
    fanout = await clients.fan_out({"partners": Call("partner-share", "/partners")})
    return render(
        request,
        "partners.html",
        {
            "partners": fanout.get("partners", {}).get("partners", []),
            "slices": SLICES,
            **fanout.availability(),
        },
    )


@router.post("/partners", response_class=HTMLResponse)
async def register_partner(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: PartnerRegistrar,
    name: Annotated[str, Form(max_length=200)] = "",
    industry: Annotated[str, Form(max_length=100)] = "",
    slices: Annotated[list[str] | None, Form()] = None,
    purposes: Annotated[str, Form(max_length=1000)] = "",
    webhook_url: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Register a partner; its API key is shown on this page only."""
    body: dict[str, Any] = {
        "name": name.strip(),
        "industry": industry.strip(),
        "slices": [s for s in (slices or []) if s in SLICES],
        "purposes": [p for p in re.split(r"[,\s]+", purposes) if p],
    }
    if webhook_url.strip():
        body["webhook_url"] = webhook_url.strip()
    # Until partner-share gives it an id, the partner is known by the name typed.
    log = Audited(db, operator, Action.partner_register, body["name"])
    try:
        answer = await clients.post("partner-share", "/partners", body)
    except ServiceUnavailable as error:
        return log.error(request, f"Not registered: {error}.", 503)
    if "error" in answer:
        return log.error(request, f"Not registered: {refusal(answer)}")
    response = render(request, "partner_created.html", {"partner": answer}, 201)
    # The key is on this page only: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return replace(log, target=str(answer["id"])).done(response, body["name"])


@router.get("/partners/{partner_id}", response_class=HTMLResponse)
async def partner_page(
    request: Request, partner_id: EntityId, clients: ClientsDep, _operator: PartnerViewer
) -> Response:
    """A partner and its disclosure ledger, newest first."""
    fanout = await clients.fan_out(
        {
            "partner": Call("partner-share", f"/partners/{quote(partner_id, safe='')}"),
            "ledger": Call(
                "partner-share", "/disclosures", {"partner_id": partner_id, "limit": LEDGER_PAGE}
            ),
        }
    )
    partner = fanout.get("partner")
    if partner is None and not fanout.partial:
        return render(request, "error.html", {"message": "No such partner."}, 404)
    return render(
        request,
        "partner.html",
        {
            "partner": partner or {"id": partner_id, "name": partner_id},
            "ledger": fanout.get("ledger", {}).get("disclosures", []),
            **fanout.availability(),
        },
    )


@router.post("/partners/{partner_id}/delete", response_class=HTMLResponse)
async def delete_partner(
    request: Request,
    partner_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: PartnerManager,
    confirm: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End a partnership once its name is typed: keys revoked, shared data deleted."""
    log = Audited(db, operator, Action.partner_delete, partner_id)
    path = f"/partners/{quote(partner_id, safe='')}"
    try:
        partner = await clients.get(Call("partner-share", path))
        if not isinstance(partner, dict) or "error" in partner:
            return log.error(request, "Not deleted: no such partner.", 404)
        if confirm.strip() != partner["name"]:
            return log.error(request, "Not deleted: type the partner's name to confirm.")
        answer = await clients.delete("partner-share", path)
    except ServiceUnavailable as error:
        return log.error(request, f"Not deleted: {error}.", 503)
    if "error" in answer:
        return log.refused(request, "Not deleted", answer)
    return log.done(RedirectResponse("/partners", status_code=303), partner["name"])
