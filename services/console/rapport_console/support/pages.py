"""The support desk: the ticket queue with filters; a ticket beside its customer's support
context (products owned, earlier tickets), with its comments; and working it (assign,
reply or note, change status). The social mentions inbox: mentions of the brand newest
first, one with its replies, and answering it on its platform (support posts the reply to
the platform's webhook). All of it through support's API."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.audit import access_log
from rapport_console.clients import Call, ServiceClients, ServiceUnavailable
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission
from rapport_console.web import (
    ClientsDep,
    WriteSessionDep,
    form_error,
    refused,
    render,
    require,
    require_form,
)

router = APIRouter(include_in_schema=False)

Agent = Annotated[Operator, require(Permission.work_tickets)]
AgentForm = Annotated[Operator, require_form(Permission.work_tickets)]
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Status = Literal["new", "open", "pending", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
# What an agent may set a ticket to (support refuses going back to new).
NewStatus = Literal["open", "pending", "resolved", "closed"]
SETTABLE = get_args(NewStatus)
QUEUE_PAGE = 50
MentionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MentionStatus = Literal["new", "ticketed", "replied", "closed"]
Sentiment = Literal["positive", "neutral", "negative"]
INBOX_PAGE = 50


@router.get("/tickets", response_class=HTMLResponse)
async def ticket_queue(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
    status: Annotated[Status | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    product_model: Annotated[str, Query(max_length=100)] = "",
    breached: Annotated[bool, Query()] = False,
) -> Response:
    """Tickets newest first, by status, priority, product model and SLA breach."""
    params: dict[str, str | int] = {"limit": QUEUE_PAGE}
    if status:
        params["status"] = status
    if priority:
        params["priority"] = priority
    if product_model.strip():
        params["product_model"] = product_model.strip()
    if breached:
        params["breached"] = "true"
    fanout = await clients.fan_out({"tickets": Call("support", "/tickets", params)})
    tickets = fanout.get("tickets", {}).get("items", [])
    for ticket in tickets:
        access_log.record(db, operator.username, operator.role, ticket["customer_id"], "tickets")
    return render(
        request,
        "tickets.html",
        {
            "tickets": tickets,
            "filters": {
                "status": status or "",
                "priority": priority or "",
                "product_model": product_model,
                "breached": breached,
            },
            "statuses": get_args(Status),
            "priorities": get_args(Priority),
            **fanout.availability(),
        },
    )


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_page(
    request: Request,
    ticket_id: TicketId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
) -> Response:
    """One ticket, with the customer's products and earlier tickets beside it."""
    ticket = await clients.fan_out(
        {"ticket": Call("support", f"/tickets/{quote(ticket_id, safe='')}")}
    )
    found = ticket.get("ticket")
    if found is None:
        if ticket.partial:
            return render(request, "error.html", {"message": "Support did not answer."}, 503)
        return render(request, "error.html", {"message": "No such ticket."}, 404)
    customer_id = found["customer_id"]
    context = await clients.fan_out(
        {"support": Call("support", f"/customers/{quote(customer_id, safe='')}/support-context")}
    )
    access_log.record(db, operator.username, operator.role, customer_id, "ticket")
    return render(
        request,
        "ticket.html",
        {
            "ticket": found,
            "settable": SETTABLE,
            "context": context.get("support"),
            "partial": context.partial,
            "unavailable": context.unavailable,
        },
    )


@dataclass(frozen=True)
class Desk:
    """What a form on the desk needs: the request, the services, the access log, the agent."""

    request: Request
    clients: ServiceClients
    db: AsyncSession
    operator: Operator

    async def change(
        self, subject: Call, page: str, change: Callable[[], Awaitable[Any]]
    ) -> Response:
        """Read what the form changes (404 when gone), change it, log the view of its
        customer as `page`, and go back to the page the form was on."""
        try:
            found = await self.clients.get(subject)
            if not isinstance(found, dict) or "error" in found:
                return form_error(self.request, "Not saved: it is not there any more.", 404)
            answer = await change()
        except ServiceUnavailable as error:
            return form_error(self.request, f"Not saved: {error}.", 503)
        if "error" in answer:
            return refused(self.request, "Not saved", answer)
        customer_id = found.get("customer_id")
        if customer_id:
            access_log.record(
                self.db, self.operator.username, self.operator.role, customer_id, page
            )
        # The form posted to <page>/<action>: back to <page>.
        return RedirectResponse(self.request.url.path.rsplit("/", 1)[0], status_code=303)


async def desk(
    request: Request, clients: ClientsDep, db: WriteSessionDep, operator: AgentForm
) -> Desk:
    return Desk(request, clients, db, operator)


DeskDep = Annotated[Desk, Depends(desk)]


def _ticket(ticket_id: str) -> Call:
    return Call("support", f"/tickets/{quote(ticket_id, safe='')}")


@router.post("/tickets/{ticket_id}/assign", response_class=HTMLResponse)
async def assign_ticket(
    ticket_id: TicketId, desk: DeskDep, assignee: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    """Assign the ticket to an agent: the operator themself unless another is named."""
    ticket = _ticket(ticket_id)
    change = {"assignee": assignee.strip() or desk.operator.username}
    return await desk.change(
        ticket, "ticket-assign", lambda: desk.clients.patch("support", ticket.path, change)
    )


@router.post("/tickets/{ticket_id}/status", response_class=HTMLResponse)
async def set_ticket_status(
    ticket_id: TicketId,
    desk: DeskDep,
    status: Annotated[NewStatus, Form()],
    resolution: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """Change the ticket's status; resolving it needs a resolution."""
    if status == "resolved" and not resolution.strip():
        return form_error(desk.request, "Not saved: say how the ticket was resolved.")
    change: dict[str, str] = {"status": status}
    if resolution.strip() and status in ("resolved", "closed"):
        change["resolution"] = resolution.strip()
    ticket = _ticket(ticket_id)
    return await desk.change(
        ticket, "ticket-status", lambda: desk.clients.patch("support", ticket.path, change)
    )


@router.post("/tickets/{ticket_id}/comments", response_class=HTMLResponse)
async def comment_on_ticket(
    ticket_id: TicketId,
    desk: DeskDep,
    body: Annotated[str, Form(max_length=20_000)] = "",
    internal: Annotated[bool, Form()] = False,
) -> Response:
    """Reply to the customer, or add an internal note the customer never sees."""
    if not body.strip():
        return form_error(desk.request, "Not saved: the comment is empty.")
    comment = {"body": body.strip(), "author": desk.operator.username, "public": not internal}
    ticket = _ticket(ticket_id)
    path = f"{ticket.path}/comments"
    return await desk.change(
        ticket, "ticket-comment", lambda: desk.clients.post("support", path, comment)
    )


@router.get("/mentions", response_class=HTMLResponse)
async def mentions_inbox(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
    status: Annotated[MentionStatus | None, Query()] = None,
    sentiment: Annotated[Sentiment | None, Query()] = None,
) -> Response:
    """Mentions newest first, by status and sentiment."""
    params: dict[str, str | int] = {"limit": INBOX_PAGE}
    if status:
        params["status"] = status
    if sentiment:
        params["sentiment"] = sentiment
    fanout = await clients.fan_out({"mentions": Call("support", "/social/mentions", params)})
    mentions = fanout.get("mentions", {}).get("items", [])
    for mention in mentions:
        if mention.get("customer_id"):
            access_log.record(
                db, operator.username, operator.role, mention["customer_id"], "mentions"
            )
    context = {
        "mentions": mentions,
        "filters": {"status": status or "", "sentiment": sentiment or ""},
        "statuses": get_args(MentionStatus),
        "sentiments": get_args(Sentiment),
        **fanout.availability(),
    }
    return render(request, "mentions.html", context)


@router.get("/mentions/{mention_id}", response_class=HTMLResponse)
async def mention_page(
    request: Request,
    mention_id: MentionId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
) -> Response:
    """One mention with its replies and their delivery, and the form to answer it."""
    path = f"/social/mentions/{quote(mention_id, safe='')}"
    fanout = await clients.fan_out({"mention": Call("support", path)})
    mention = fanout.get("mention")
    if mention is None:
        if fanout.partial:
            return render(request, "error.html", {"message": "Support did not answer."}, 503)
        return render(request, "error.html", {"message": "No such mention."}, 404)
    if mention.get("customer_id"):
        access_log.record(db, operator.username, operator.role, mention["customer_id"], "mention")
    return render(request, "mention.html", {"mention": mention})


@router.post("/mentions/{mention_id}/reply", response_class=HTMLResponse)
async def reply_to_mention(
    mention_id: MentionId, desk: DeskDep, text: Annotated[str, Form(max_length=5000)] = ""
) -> Response:
    """Answer the mention on its platform, signed by the operator."""
    if not text.strip():
        return form_error(desk.request, "Not sent: the reply is empty.")
    mention = Call("support", f"/social/mentions/{quote(mention_id, safe='')}")
    reply = {"text": text.strip(), "author": desk.operator.username}
    path = f"{mention.path}/reply"
    return await desk.change(
        mention, "mention-reply", lambda: desk.clients.post("support", path, reply)
    )
