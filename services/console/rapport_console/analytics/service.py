"""The analytics page's charts, each from one service's answer (None when it has none)."""

from typing import Any

from rapport_console.charts import Chart


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
