"""Campaigns: the list; a new campaign, saved as a draft; its message previewed for one
customer; launching it; and its report's funnel. Creating and launching go to the audit
log. All of it is campaign's API."""

from dataclasses import replace
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console.audit import access_log
from rapport_console.audit.models import Action
from rapport_console.campaigns.service import CHANNELS, CampaignForm, Preview, funnel, preview_for
from rapport_console.clients import Call, ServiceClients, ServiceUnavailable
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

CampaignViewer = Annotated[Operator, require(Permission.view_campaigns)]
CampaignCreator = Annotated[
    Operator, require_form(Permission.view_campaigns, Action.campaign_create, "name")
]
CampaignLauncher = Annotated[
    Operator, require_form(Permission.view_campaigns, Action.campaign_launch, "campaign_id")
]
PREVIEW_PAGE = "campaign-preview"


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(
    request: Request, clients: ClientsDep, _operator: CampaignViewer
) -> Response:
    """Every campaign and its status."""
    fanout = await clients.fan_out({"campaigns": Call("campaign", "/campaigns")})
    return render(
        request,
        "campaigns.html",
        {
            "campaigns": fanout.listed("campaigns"),
            **fanout.availability(),
        },
    )


@router.get("/campaigns/new", response_class=HTMLResponse)
async def new_campaign(
    request: Request, clients: ClientsDep, _operator: CampaignViewer
) -> Response:
    """The form of a new campaign: name, channel, segment, subject and body."""
    return await _campaign_form(request, clients, CampaignForm(), None, 200)


async def _campaign_form(
    request: Request,
    clients: ServiceClients,
    form: CampaignForm,
    problem: str | None,
    status_code: int,
) -> Response:
    fanout = await clients.fan_out({"segments": Call("campaign", "/segments")})
    context = {
        "form": form,
        "problem": problem,
        "channels": CHANNELS,
        "segments": fanout.listed("segments"),
        **fanout.availability(),
    }
    return render(request, "campaign_new.html", context, status_code)


@router.post("/campaigns", response_class=HTMLResponse)
async def create_campaign(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: CampaignCreator,
    name: Annotated[str, Form(max_length=200)] = "",
    channel: Annotated[str, Form(max_length=16)] = "email",
    segment_id: Annotated[str, Form(max_length=64)] = "",
    subject: Annotated[str, Form(max_length=500)] = "",
    body: Annotated[str, Form(max_length=20_000)] = "",
    link: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Save the campaign as a draft and open it, to preview and launch."""
    form = CampaignForm(
        name.strip(), channel, segment_id.strip(), subject.strip(), body, link.strip()
    )
    # Until campaign gives it an id, the campaign is known by the name typed.
    log = Audited(db, operator, Action.campaign_create, form.name)
    problem = form.problem()
    if problem is None:
        try:
            answer = await clients.post("campaign", "/campaigns", form.request())
        except ServiceUnavailable as error:
            log.record(503, f"Not saved: {error}.")
            return await _campaign_form(request, clients, form, f"Not saved: {error}.", 503)
        if "error" not in answer:
            created = replace(log, target=str(answer["id"]))
            redirect = RedirectResponse(f"/campaigns/{quote(answer['id'], safe='')}", 303)
            return created.done(redirect, form.name)
        problem = refusal(answer)
    log.record(400, f"Not saved: {problem}")
    return await _campaign_form(request, clients, form, f"Not saved: {problem}", 400)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(
    request: Request,
    campaign_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: CampaignViewer,
    customer: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    """One campaign: its message, previewed for a customer (id or e-mail), and its funnel."""
    cid = quote(campaign_id, safe="")
    fanout = await clients.fan_out(
        {
            "campaign": Call("campaign", f"/campaigns/{cid}"),
            "report": Call("campaign", f"/campaigns/{cid}/report"),
        }
    )
    campaign, report = fanout.get("campaign"), fanout.get("report")
    if campaign is None and not fanout.partial:
        return render(request, "error.html", {"message": "No such campaign."}, 404)
    preview = Preview()
    if customer.strip() and campaign is not None:
        preview = await preview_for(clients, cid, customer.strip())
    if preview.message is not None:
        customer_id = preview.message["customer_id"]
        access_log.record(db, operator.username, operator.role, customer_id, PREVIEW_PAGE)
    context = {
        "campaign": campaign or {"id": campaign_id, "name": campaign_id},
        "report": report if isinstance(report, dict) else None,
        "funnel": funnel(report),
        "customer": customer,
        "preview": preview,
        **fanout.availability(),
    }
    return render(request, "campaign.html", context, preview.status_code)


@router.post("/campaigns/{campaign_id}/launch", response_class=HTMLResponse)
async def launch_campaign(
    request: Request,
    campaign_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: CampaignLauncher,
) -> Response:
    """Send the campaign now; its page then follows the funnel as messages go out."""
    log = Audited(db, operator, Action.campaign_launch, campaign_id)
    cid = quote(campaign_id, safe="")
    try:
        answer = await clients.post("campaign", f"/campaigns/{cid}/launch", None)
    except ServiceUnavailable as error:
        return log.error(request, f"Not launched: {error}.", 503)
    if "error" in answer:
        return log.refused(request, "Not launched", answer)
    return log.done(RedirectResponse(f"/campaigns/{cid}", status_code=303))
