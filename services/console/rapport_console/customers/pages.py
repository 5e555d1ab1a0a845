"""Customer search, the customer 360 and its timeline."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console.audit import access_log
from rapport_console.customers import service
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission, may
from rapport_console.web import (
    ClientsDep,
    EntityId,
    WriteSessionDep,
    render,
    require,
)

router = APIRouter(include_in_schema=False)

Kind = Literal["profile", "consents", "orders", "activity", "marketing", "support", "partners"]
KindQuery = Annotated[Kind | None, Query()]
CUSTOMER_PAGE = "customer-360"
Viewer = Annotated[Operator, require(Permission.view_customers)]


@router.get("/", response_class=HTMLResponse)
async def home() -> Response:
    """The console opens on customer search."""
    return RedirectResponse("/customers", status_code=303)


@router.get("/customers", response_class=HTMLResponse)
async def search_page(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Viewer,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Find a customer by name, e-mail, phone or `system:external-id`."""
    found, fanout = ([], None) if not q.strip() else await service.search(clients, q)
    for customer in found:
        access_log.record(db, operator.username, operator.role, customer["id"], "search")
    return render(
        request,
        "search.html",
        {
            "q": q,
            "found": found,
            "partial": bool(fanout and fanout.partial),
            "unavailable": fanout.unavailable if fanout else {},
        },
    )


# The newest views shown on a 360 page; the access log page has them all (up to its own
# page). A customer viewed all day would otherwise carry a hundred rows on every page.
ACCESS_ON_PAGE = 20


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer_page(
    request: Request,
    customer_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Viewer,
    kind: KindQuery = None,
) -> Response:
    """The customer 360: profile, consents, value, timeline, products, tickets, segments,
    disclosures (and, for a privacy officer, who viewed it)."""
    view = await service.customer_360(clients, customer_id, kind)
    if not view.found:
        return render(request, "not_found.html", {"customer_id": customer_id}, status_code=404)
    merged_into = (view.customer or {}).get("merged_into")
    if merged_into:
        return RedirectResponse(f"/customers/{merged_into}", status_code=303)
    access_log.record(db, operator.username, operator.role, customer_id, CUSTOMER_PAGE)
    if may(operator.role, Permission.read_access_log):
        await db.flush()
        view.access = await access_log.of_customer(db, customer_id, ACCESS_ON_PAGE)
    return render(
        request,
        "customer.html",
        {
            "view": view,
            "spend": service.spend_chart(view.spend),
            "kinds": service.TIMELINE_KINDS,
            **view.fanout.availability(),
            **_timeline_helpers(kind),
        },
    )


# The 360's parameters again: the filter asks for this fragment as a route of its own.
@router.get("/customers/{customer_id}/timeline", response_class=HTMLResponse)
async def timeline_fragment(
    request: Request,
    customer_id: EntityId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Viewer,
    kind: KindQuery = None,
) -> Response:
    """The timeline part of the 360, of one kind (what the filter swaps in)."""
    fanout = await clients.fan_out({"timeline": service.timeline_call(customer_id, kind)})
    access_log.record(db, operator.username, operator.role, customer_id, "timeline")
    return render(
        request,
        "_timeline.html",
        {
            "customer_id": customer_id,
            "timeline": fanout.get("timeline", {}).get("items", []),
            **fanout.availability(),
            **_timeline_helpers(kind),
        },
    )


def _timeline_helpers(kind: Kind | None) -> dict[str, Any]:
    """What the timeline's template reads besides its events: the kind shown, event names."""
    return {"kind": kind, "short_type": service.short_type, "kind_of": service.kind_of}
