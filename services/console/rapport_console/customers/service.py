"""The customer 360: one fan-out to the four services, shaped for the page.

Profile holds the person, consents, value and the timeline; campaign the segments;
support the products and tickets; partner-share the disclosure ledger. Whatever a
service cannot answer in time leaves its part of the page empty and the page partial.
"""

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from rapport_console.charts import Chart
from rapport_console.clients import Call, Fanout, ServiceClients

# Kinds an operator filters the timeline by: event types (without `rapport.` and `.v1`).
TIMELINE_KINDS: dict[str, tuple[str, ...]] = {
    "profile": (
        "customer.registered",
        "customer.updated",
        "customer.merged",
        "customer.value.changed",
    ),
    "consents": ("consent.granted", "consent.revoked"),
    "orders": ("order.completed",),
    "activity": (
        "interaction.tracked",
        "cart.updated",
        "survey.completed",
        "loyalty.points.earned",
    ),
    "marketing": (
        "segment.entered",
        "segment.exited",
        "campaign.message.sent",
        "campaign.message.delivered",
        "campaign.message.opened",
        "campaign.message.clicked",
        "campaign.conversion.attributed",
    ),
    "support": (
        "ticket.opened",
        "ticket.updated",
        "ticket.resolved",
        "ticket.rated",
        "ticket.sla.breached",
        "social.mention.received",
        "social.reply.sent",
    ),
    "partners": ("partner.data.disclosed", "partner.event.contributed"),
}
TIMELINE_PAGE = 50
_SEARCH_LIMIT = 25
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,}$")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.-]+:\S+$")


def short_type(event_type: str) -> str:
    """`rapport.order.completed.v1` as operators read it: `order.completed`."""
    return re.sub(r"\.v\d+$", "", event_type.removeprefix("rapport."))


def kind_of(event_type: str) -> str:
    """The timeline kind an event type belongs to."""
    name = short_type(event_type)
    return next((kind for kind, types in TIMELINE_KINDS.items() if name in types), "other")


def search_params(text: str) -> dict[str, str | int]:
    """Profile's search parameters for what an operator typed in the one search box.

    An e-mail has an @, a phone number is digits (with +, spaces, dashes), an external
    id is `system:id`; anything else is words of the name.
    """
    text = text.strip()
    params: dict[str, str | int] = {"limit": _SEARCH_LIMIT}
    if "@" in text:
        params["email"] = text.lower()
    elif _PHONE.match(text):
        digits = re.sub(r"[^0-9]", "", text)
        params["phone"] = "+" + digits
    elif _EXTERNAL_ID.match(text):
        params["external_id"] = text
    else:
        params["q"] = text
    return params


async def search(clients: ServiceClients, text: str) -> tuple[list[dict[str, Any]], Fanout]:
    """Customers matching the search box, from profile."""
    fanout = await clients.fan_out({"page": Call("profile", "/customers", search_params(text))})
    page = fanout.get("page", {})
    items = page.get("items", []) if isinstance(page, dict) and "error" not in page else []
    return items, fanout


@dataclass
class SpendPoint:
    month: str
    orders: int
    revenue: Decimal


@dataclass
class Customer360:
    """Everything the 360 page shows, and which services it lacks."""

    customer_id: str
    fanout: Fanout
    customer: dict[str, Any] | None
    consents: dict[str, Any] | None
    metrics: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    spend: list[SpendPoint]
    segments: list[dict[str, Any]]
    support: dict[str, Any] | None
    disclosures: list[dict[str, Any]]
    access: list[Any] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """Whether any service knows the customer (profile down is not 'not found')."""
        return self.customer is not None or self.fanout.partial


def timeline_params(kind: str | None, limit: int = TIMELINE_PAGE) -> list[tuple[str, str | int]]:
    """Profile's query for a timeline page of one kind, or of all."""
    params: list[tuple[str, str | int]] = [("limit", limit)]
    for event_type in TIMELINE_KINDS.get(kind or "", ()):
        params.append(("type", event_type))
    return params


def timeline_call(customer_id: str, kind: str | None, limit: int = TIMELINE_PAGE) -> Call:
    """Profile's timeline of one customer, of one kind or all."""
    path = f"/customers/{quote(customer_id, safe='')}/timeline"
    return Call("profile", path, timeline_params(kind, limit))


async def customer_360(clients: ServiceClients, customer_id: str, kind: str | None) -> Customer360:
    """Every part of the 360 page, asked of the four services at once."""
    cid = quote(customer_id, safe="")
    fanout = await clients.fan_out(
        {
            # Profile's part in one request: customer, consents, metrics, timeline, spend.
            "overview": Call("profile", f"/customers/{cid}/overview", timeline_params(kind)),
            "audience": Call("campaign", f"/audience/{cid}"),
            # Only for the names of the customer's segments, which seldom change.
            "segments": Call(
                "campaign", "/segments", cache_s=clients.settings.segment_names_cache_s
            ),
            "support": Call("support", f"/customers/{cid}/support-context"),
            "disclosures": Call("partner-share", f"/customers/{cid}/disclosures"),
        }
    )
    overview = fanout.get("overview", {})
    support = fanout.get("support")
    customer = overview.get("customer")
    if customer is None and support and support.get("customer"):
        # Profile is down: support's own copy of who the customer is stands in.
        customer = {**support["customer"], "id": customer_id, "from_support": True}
    return Customer360(
        customer_id=customer_id,
        fanout=fanout,
        customer=customer,
        consents=overview.get("consents"),
        metrics=overview.get("metrics"),
        timeline=(overview.get("timeline") or {}).get("items", []),
        spend=spend_points(overview.get("spend", [])),
        segments=segments_of(fanout.get("audience"), fanout.listed("segments")),
        support=support,
        disclosures=fanout.get("disclosures", {}).get("disclosures", []),
    )


def spend_points(months: list[dict[str, Any]]) -> list[SpendPoint]:
    """Profile's spend per month (oldest first) as the chart's points."""
    return [
        SpendPoint(month["month"], int(month["orders"]), Decimal(str(month["revenue"])))
        for month in months
    ]


def segments_of(
    audience: dict[str, Any] | None, segments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The customer's segments with their names (campaign knows only ids per member)."""
    if not audience:
        return []
    names = {segment["id"]: segment for segment in segments if isinstance(segment, dict)}
    return [
        names.get(segment_id, {"id": segment_id, "name": segment_id})
        for segment_id in audience.get("segments", [])
    ]


def spend_chart(spend: list[SpendPoint]) -> Chart | None:
    """Revenue and orders per month, or None without orders."""
    if not spend:
        return None
    chart = Chart("bar", [point.month for point in spend])
    chart.add("revenue", [float(point.revenue) for point in spend])
    chart.add("orders", [point.orders for point in spend], type="line", yAxisID="orders")
    return chart
