"""Campaigns: the list; a new campaign, saved as a draft; its message previewed for one
customer; launching it (recorded in the audit log); and its report's funnel. All of it is
campaign's API."""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console import access_log
from rapport_console.audit import Action
from rapport_console.charts import Chart
from rapport_console.clients import Call, ServiceClients, ServiceUnavailable
from rapport_console.operators import Operator
from rapport_console.roles import Permission
from rapport_console.web import (
    Audited,
    ClientsDep,
    WriteSessionDep,
    refusal,
    render,
    require,
    require_form,
)

router = APIRouter(include_in_schema=False)

CampaignViewer = Annotated[Operator, require(Permission.view_campaigns)]
CampaignRunner = Annotated[Operator, require_form(Permission.view_campaigns)]
CampaignLauncher = Annotated[
    Operator, require_form(Permission.view_campaigns, Action.campaign_launch, "campaign_id")
]
EntityId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
FUNNEL = ("targeted", "suppressed", "sent", "delivered", "opened", "clicked", "converted")
CHANNELS = ("email", "sms", "push", "social")
PREVIEW_PAGE = "campaign-preview"


@dataclass(frozen=True)
class CampaignForm:
    """What the new-campaign form holds: one message (variant A) to one segment."""

    name: str = ""
    channel: str = "email"
    segment_id: str = ""
    subject: str = ""
    body: str = ""
    link: str = ""

    def problem(self) -> str | None:
        """Why this cannot be a campaign, when that is plain before asking campaign."""
        if not self.name:
            return "the campaign needs a name"
        if self.channel not in CHANNELS:
            return f"the channel is one of {', '.join(CHANNELS)}"
        if not self.segment_id:
            return "choose the segment it goes to"
        if not self.body.strip():
            return "the message needs a body"
        if self.channel == "email" and not self.subject:
            return "an e-mail needs a subject"
        return None

    def request(self) -> dict[str, Any]:
        """The body of campaign's POST /campaigns."""
        variant = {"name": "A", "body": self.body}
        if self.subject:
            variant["subject"] = self.subject
        body: dict[str, Any] = {
            "name": self.name,
            "channel": self.channel,
            "variants": [variant],
            "audience": {"segment_id": self.segment_id},
        }
        if self.link:
            body["link"] = self.link
        return body


@dataclass(frozen=True)
class Preview:
    """A message rendered for one customer, or why there is none (with its status)."""

    message: dict[str, Any] | None = None
    problem: str | None = None
    status_code: int = 200


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(
    request: Request, clients: ClientsDep, _operator: CampaignViewer
) -> Response:
    """Every campaign and its status."""
    fanout = await clients.fan_out({"campaigns": Call("campaign", "/campaigns")})
    campaigns = fanout.get("campaigns", [])
    return render(
        request,
        "campaigns.html",
        {
            "campaigns": campaigns if isinstance(campaigns, list) else [],
            "partial": fanout.partial,
            "unavailable": fanout.unavailable,
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
    segments = fanout.get("segments", [])
    context = {
        "form": form,
        "problem": problem,
        "channels": CHANNELS,
        "segments": segments if isinstance(segments, list) else [],
        "partial": fanout.partial,
        "unavailable": fanout.unavailable,
    }
    return render(request, "campaign_new.html", context, status_code)


@router.post("/campaigns", response_class=HTMLResponse)
async def create_campaign(
    request: Request,
    clients: ClientsDep,
    _operator: CampaignRunner,
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
    problem = form.problem()
    if problem is None:
        try:
            answer = await clients.post("campaign", "/campaigns", form.request())
        except ServiceUnavailable as error:
            return await _campaign_form(request, clients, form, f"Not saved: {error}.", 503)
        if "error" not in answer:
            return RedirectResponse(f"/campaigns/{quote(answer['id'], safe='')}", 303)
        problem = refusal(answer)
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
        preview = await _preview(clients, cid, customer.strip())
    if preview.message is not None:
        customer_id = preview.message["customer_id"]
        access_log.record(db, operator.username, operator.role, customer_id, PREVIEW_PAGE)
    context = {
        "campaign": campaign or {"id": campaign_id, "name": campaign_id},
        "report": report if isinstance(report, dict) else None,
        "funnel": _funnel(report),
        "customer": customer,
        "preview": preview,
        "partial": fanout.partial,
        "unavailable": fanout.unavailable,
    }
    return render(request, "campaign.html", context, preview.status_code)


def _funnel(report: Any) -> Chart | None:
    if not isinstance(report, dict) or "error" in report:
        return None
    return Chart("bar", list(FUNNEL)).add("customers", [report.get(step, 0) for step in FUNNEL])


async def _preview(clients: ServiceClients, cid: str, customer: str) -> Preview:
    """The campaign's message for a customer given by id or e-mail."""
    try:
        customer_id = await _customer_id(clients, customer)
        if customer_id is None:
            return Preview(problem=f"No customer has the e-mail {customer}.", status_code=404)
        path = f"/campaigns/{cid}/preview"
        answer = await clients.get(Call("campaign", path, {"customer_id": customer_id}))
    except ServiceUnavailable as error:
        return Preview(problem=f"No preview: {error}.", status_code=503)
    if answer is None:
        problem = f"Campaign does not know the customer {customer_id}."
        return Preview(problem=problem, status_code=404)
    if "error" in answer:
        return Preview(problem=f"No preview: {refusal(answer)}", status_code=400)
    return Preview(message=answer)


async def _customer_id(clients: ServiceClients, customer: str) -> str | None:
    """The id itself, or the id of the customer with this e-mail (profile's search)."""
    if "@" not in customer:
        return customer
    found = await clients.get(Call("profile", "/customers", {"email": customer, "limit": 1}))
    items = (found or {}).get("items") or []
    return str(items[0]["id"]) if items else None


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
