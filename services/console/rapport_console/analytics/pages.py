"""Analytics and KPIs: revenue and orders over time by a demographic, tiers, the forecast,
and which channels and campaigns bring customers and revenue."""

from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console.analytics import service
from rapport_console.clients import Call
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission
from rapport_console.web import ClientsDep, render, require

router = APIRouter(include_in_schema=False)

Metric = Literal["revenue", "orders", "new_customers", "average_order"]
Dimension = Literal[
    "none", "age_band", "gender", "income_band", "education", "country", "acquisition_channel"
]
Interval = Literal["day", "week", "month"]
Analyst = Annotated[Operator, require(Permission.view_analytics)]


@router.get("/analytics", response_class=HTMLResponse)
async def analytics_page(
    request: Request,
    clients: ClientsDep,
    _operator: Analyst,
    metric: Metric = "revenue",
    by: Dimension = "none",
    interval: Interval = "month",
) -> Response:
    """KPI charts, each with its numbers in a table beside it."""
    fanout = await clients.fan_out(
        {
            "trends": Call(
                "profile",
                "/analytics/trends",
                {"metric": metric, "by": by, "interval": interval},
            ),
            "tiers": Call("profile", "/analytics/tiers"),
            "forecast": Call(
                "profile", "/analytics/forecast", {"metric": metric, "interval": interval}
            ),
            "channels": Call("campaign", "/analytics/channels"),
        }
    )
    return render(
        request,
        "analytics.html",
        {
            "metric": metric,
            "by": by,
            "interval": interval,
            "metrics": get_args(Metric),
            "dimensions": get_args(Dimension),
            "intervals": get_args(Interval),
            "trends": service.trends_chart(fanout.get("trends")),
            "tiers": service.tiers_chart(fanout.get("tiers")),
            "forecast": service.forecast_chart(fanout.get("forecast")),
            "channels": service.channels_chart(fanout.get("channels")),
            "campaigns": (fanout.get("channels") or {}).get("campaigns", []),
            **fanout.availability(),
        },
    )
