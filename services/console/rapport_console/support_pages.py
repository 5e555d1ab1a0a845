"""The support desk: the ticket queue with filters, and a ticket beside its customer's
support context (products owned, earlier tickets), both from support's API."""

from typing import Annotated, Literal, get_args
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console import access_log
from rapport_console.clients import Call
from rapport_console.operators import Operator
from rapport_console.roles import Permission
from rapport_console.web import ClientsDep, WriteSessionDep, render, require

router = APIRouter(include_in_schema=False)

Agent = Annotated[Operator, require(Permission.work_tickets)]
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Status = Literal["new", "open", "pending", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
QUEUE_PAGE = 50


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
            "partial": fanout.partial,
            "unavailable": fanout.unavailable,
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
            "context": context.get("support"),
            "partial": context.partial,
            "unavailable": context.unavailable,
        },
    )
