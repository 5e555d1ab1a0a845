"""Analytics and KPIs: revenue and orders over time by a demographic, tiers, the forecast,
and which channels and campaigns bring customers and revenue."""

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console.charts import Chart
from rapport_console.clients import Call
from rapport_console.operators import Operator
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
            "trends": trends_chart(fanout.get("trends")),
            "tiers": tiers_chart(fanout.get("tiers")),
            "forecast": forecast_chart(fanout.get("forecast")),
            "channels": channels_chart(fanout.get("channels")),
            "campaigns": (fanout.get("channels") or {}).get("campaigns", []),
            "partial": fanout.partial,
            "unavailable": fanout.unavailable,
        },
    )


def _ok(reply: Any) -> bool:
    return isinstance(reply, dict) and "error" not in reply


def trends_chart(reply: Any) -> Chart | None:
    """One line per group of the chosen demographic."""
    if not _ok(reply):
        return None
    periods = sorted({p["period"] for s in reply["series"] for p in s["points"]})
    chart = Chart("line", periods)
    for series in reply["series"]:
        values = {p["period"]: p["value"] for p in series["points"]}
        chart.add(series["group"], [values.get(period, 0) for period in periods])
    return chart


def tiers_chart(reply: Any) -> Chart | None:
    if not _ok(reply):
        return None
    tiers = reply["tiers"]
    chart = Chart("bar", [t["tier"] for t in tiers])
    chart.add("customers", [t["customers"] for t in tiers])
    chart.add("revenue", [t["revenue"] for t in tiers], yAxisID="revenue")
    return chart


def forecast_chart(reply: Any) -> Chart | None:
    """History then forecast on one axis; the forecast's band is its backtest error."""
    if not _ok(reply):
        return None
    history, forecast = reply["history"], reply["forecast"]
    labels = [p["period"] for p in history] + [p["period"] for p in forecast]
    mae = float(reply.get("backtest", {}).get("mae") or 0)
    blank: list[float | None] = [None] * len(history)
    chart = Chart("line", labels)
    chart.add("actual", [p["value"] for p in history] + [None] * len(forecast))
    chart.add("forecast", blank + [p["value"] for p in forecast])
    chart.add("low", blank + [max(p["value"] - mae, 0) for p in forecast])
    chart.add("high", blank + [p["value"] + mae for p in forecast])
    return chart


def channels_chart(reply: Any) -> Chart | None:
    if not _ok(reply):
        return None
    rows = reply["acquisition_channels"]
    chart = Chart("bar", [r["acquisition_channel"] for r in rows])
    chart.add("customers", [r["customers"] for r in rows])
    chart.add("revenue", [float(r["revenue"]) for r in rows], yAxisID="revenue")
    return chart
