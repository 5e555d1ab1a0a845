"""The analytical side: metrics with RFM and tiers, trends by demographics, forecasts.

Trends and the forecast share the period arithmetic of `periods` and the models of their
replies. The reads take a `ProfileUnitOfWork` (the overview passes its own)."""

import asyncio
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Executor
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from rapport_events import errors
from rapport_events import value as customer_value
from rapport_events.base import utcnow
from rapport_profile.analytics.models import CustomerMetrics, MetricsPublic, RfmScores
from rapport_profile.analytics.periods import (
    Interval,
    bounds,
    next_period,
    period_start,
    periods,
)
from rapport_profile.customers.models import Customer
from rapport_profile.shared import aware
from rapport_profile.unit_of_work import ProfileUnitOfWork

Metric = Literal["revenue", "orders", "new_customers", "average_order"]


Dimension = Literal[
    "none", "age_band", "gender", "income_band", "education", "country", "acquisition_channel"
]


# Tiers by lifetime value, the same in every service (rapport_events.value).
TIER_NAMES = tuple(name for name, _ in customer_value.TIER_LIFETIME_VALUE) + ("none",)


AGE_BANDS: tuple[tuple[int, str], ...] = (
    (18, "<18"),
    (25, "18-24"),
    (35, "25-34"),
    (45, "35-44"),
    (55, "45-54"),
    (65, "55-64"),
)


UNKNOWN = "unknown"


CENT = Decimal("0.01")


class UnknownTier(errors.InvalidRequest):
    """Not one of the profitability tiers."""


def check_tier(tier: str) -> str:
    """`tier` when it names a tier, else UnknownTier."""
    if tier not in TIER_NAMES:
        raise UnknownTier(f"tier must be one of {', '.join(TIER_NAMES)}")
    return tier


async def metrics_of(uow: ProfileUnitOfWork, customer_id: str) -> MetricsPublic:
    """Orders, revenue, RFM scores, lifetime value and tier (rapport_events.value)."""
    metrics = await uow.analytics.get_metrics(customer_id) or CustomerMetrics(
        customer_id=customer_id
    )
    if metrics.orders == 0 or metrics.last_order_at is None or metrics.first_order_at is None:
        return MetricsPublic(
            customer_id=customer_id,
            orders=0,
            revenue=Decimal("0.00"),
            average_order_value=None,
            average_order=None,
            first_order_at=None,
            last_order_at=None,
            recency_days=None,
            rfm=RfmScores(recency=None, frequency=None, monetary=None, combined=None),
            lifetime_value=Decimal("0.00"),
            profit=Decimal("0.00"),
            tier="none",
            profitability_tier="none",
            loyalty_points=metrics.loyalty_points,
        )
    now = utcnow()
    revenue = Decimal(metrics.revenue).quantize(CENT)
    first, last = aware(metrics.first_order_at), aware(metrics.last_order_at)
    recency = customer_value.recency_score(last, now)
    frequency = customer_value.frequency_score(metrics.orders)
    monetary = customer_value.monetary_score(metrics.orders, revenue)
    average = customer_value.average_order_value(metrics.orders, revenue)
    return MetricsPublic(
        customer_id=customer_id,
        orders=metrics.orders,
        revenue=revenue,
        average_order_value=average,
        average_order=average,
        first_order_at=first,
        last_order_at=last,
        recency_days=max((now - last).days, 0),
        rfm=RfmScores(
            recency=recency,
            frequency=frequency,
            monetary=monetary,
            combined=f"{recency}{frequency}{monetary}",
        ),
        lifetime_value=Decimal(metrics.lifetime_value).quantize(CENT),
        profit=Decimal(metrics.profit).quantize(CENT),
        tier=metrics.tier,
        profitability_tier=metrics.tier,
        loyalty_points=metrics.loyalty_points,
    )


class TierSummary(BaseModel):
    """One profitability tier: who is in it and what they bring."""

    tier: str
    customers: int
    revenue: float
    profit: float
    min_profit: float | None
    max_profit: float | None


class TiersReply(BaseModel):
    """Customers by tier of lifetime value (profit is revenue less cost of goods where known)."""

    ranked_customers: int
    tiers: list[TierSummary]


async def tiers(uow: ProfileUnitOfWork) -> TiersReply:
    """The base split into tiers by lifetime value."""
    rows = await uow.analytics.metrics_of_active()
    groups: dict[str, list[CustomerMetrics]] = {name: [] for name in TIER_NAMES}
    for row in rows:
        groups[row.tier if row.orders > 0 else "none"].append(row)
    summaries = []
    for name in TIER_NAMES:
        members = groups[name]
        member_profits = [float(m.profit) for m in members]
        summaries.append(
            TierSummary(
                tier=name,
                customers=len(members),
                revenue=round(sum(float(m.revenue) for m in members), 2),
                profit=round(sum(member_profits), 2),
                min_profit=min(member_profits) if member_profits else None,
                max_profit=max(member_profits) if member_profits else None,
            )
        )
    return TiersReply(ranked_customers=sum(1 for r in rows if r.orders > 0), tiers=summaries)


def age_band(birth_date: date | None, on: date) -> str:
    if birth_date is None:
        return UNKNOWN
    age = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    for limit, name in AGE_BANDS:
        if age < limit:
            return name
    return "65+"


def group_of(customer: Customer | None, by: Dimension, on: date) -> str:
    if by == "none":
        return "all"
    if customer is None:
        return UNKNOWN
    if by == "age_band":
        return age_band(customer.birth_date, on)
    value = getattr(customer, by)
    return str(value) if value else UNKNOWN


class TrendPoint(BaseModel):
    period: date
    value: float


class TrendSeries(BaseModel):
    group: str
    points: list[TrendPoint]


class TrendsReply(BaseModel):
    """A metric per period, one series per group of the chosen dimension."""

    metric: Metric
    by: Dimension
    interval: Interval
    start: date
    end: date
    series: list[TrendSeries]


async def trends(
    uow: ProfileUnitOfWork,
    *,
    metric: Metric,
    by: Dimension,
    interval: Interval,
    start: date,
    end: date,
) -> TrendsReply:
    """Revenue, orders, average order or new customers per period and group."""
    low, high = bounds(start, end)
    sums: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    if metric == "new_customers":
        for person in await uow.analytics.customers_created_between(low, high):
            day = aware(person.created_at).date()
            group = group_of(person, by, day)
            counts[group][period_start(day, interval)] += 1
    else:
        for order, customer in await uow.analytics.orders_between(low, high):
            known = customer if customer is not None and customer.status == "active" else None
            day = aware(order.occurred_at).date()
            group = group_of(known, by, day)
            bucket = period_start(day, interval)
            sums[group][bucket] += Decimal(order.revenue)
            counts[group][bucket] += 1
    groups = sorted(set(sums) | set(counts)) or (["all"] if by == "none" else [])
    series = []
    for group in groups:
        points = []
        for bucket in periods(start, end, interval):
            points.append(
                TrendPoint(period=bucket, value=_value(metric, sums, counts, group, bucket))
            )
        series.append(TrendSeries(group=group, points=points))
    return TrendsReply(metric=metric, by=by, interval=interval, start=start, end=end, series=series)


def _value(
    metric: Metric,
    sums: dict[str, dict[date, Decimal]],
    counts: dict[str, dict[date, int]],
    group: str,
    bucket: date,
) -> float:
    count = counts[group].get(bucket, 0)
    if metric in ("orders", "new_customers"):
        return float(count)
    total = sums[group].get(bucket, Decimal(0))
    if metric == "average_order":
        return float((total / count).quantize(CENT)) if count else 0.0
    return float(total.quantize(CENT))


class NotEnoughHistory(errors.InvalidRequest):
    """Too few periods of history to fit and backtest a model."""


class ForecastPoint(BaseModel):
    period: date
    value: float


class Backtest(BaseModel):
    """The model refitted without the last `holdout` periods and scored on them."""

    holdout: int
    mae: float
    mape: float | None
    actual: list[float]
    predicted: list[float]


class ForecastReply(BaseModel):
    """The next periods of a metric, with the method, its backtest error and how fresh the
    fitted model is (`fitted_at`, `age_s`): the history ends where the fit read it."""

    metric: Metric
    interval: Interval
    method: str
    history: list[ForecastPoint]
    forecast: list[ForecastPoint]
    backtest: Backtest
    fitted_at: datetime
    age_s: float


MIN_HISTORY = 6


def _fit_and_forecast(
    values: list[float], horizon: int, seasonal_periods: int | None
) -> list[float]:
    import numpy as np
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "add" if seasonal_periods and len(values) >= 2 * seasonal_periods else None
    with warnings.catch_warnings():
        # Short business series often fail to converge to the last digit; the fit is still used.
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            np.asarray(values, dtype=float),
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=seasonal_periods if seasonal else None,
            initialization_method="estimated",
        ).fit()
        predicted = model.forecast(horizon)
    # NaN passes through (max keeps it) so the caller can refuse the forecast.
    return [v if math.isnan(v) else max(v, 0.0) for v in map(float, predicted)]


def fit_both(
    train: list[float], holdout: int, values: list[float], horizon: int, seasonal: int | None
) -> tuple[list[float], list[float]]:
    """The backtest's predictions and the forecast: both fits of one request, in one call
    (a worker process runs it whole)."""
    return (
        _fit_and_forecast(train, holdout, seasonal),
        _fit_and_forecast(values, horizon, seasonal),
    )


CONSTANT_METHOD = "flat history: its one value repeated (no model fitted)"


async def _fit_elsewhere(
    executor: Callable[[], Executor] | None,
    train: list[float],
    holdout: int,
    values: list[float],
    horizon: int,
    seasonal_periods: int | None,
    window: str,
) -> tuple[list[float], list[float]]:
    try:
        return await asyncio.get_running_loop().run_in_executor(
            executor() if executor else None,
            fit_both,
            train,
            holdout,
            values,
            horizon,
            seasonal_periods,
        )
    except BrokenExecutor:
        raise  # the worker died: not the history's fault (the caller replaces it)
    except Exception as error:  # statsmodels raises many kinds (LinAlgError, ValueError...)
        raise NotEnoughHistory(f"no model could be fitted to {window}: {error}") from error


def method_name(seasonal_periods: int | None, length: int) -> str:
    seasonal = seasonal_periods and length >= 2 * seasonal_periods
    return "statsmodels Holt-Winters exponential smoothing (additive damped trend" + (
        f", additive seasonality of {seasonal_periods} periods)" if seasonal else ")"
    )


def _errors(actual: Iterable[float], predicted: Iterable[float]) -> tuple[float, float | None]:
    pairs = list(zip(actual, predicted, strict=True))
    mae = sum(abs(a - p) for a, p in pairs) / len(pairs)
    relative = [abs(a - p) / abs(a) for a, p in pairs if a != 0]
    mape = 100 * sum(relative) / len(relative) if relative else None
    return mae, mape


async def forecast(
    uow: ProfileUnitOfWork,
    *,
    metric: Metric,
    interval: Interval,
    start: date,
    end: date,
    horizon: int,
    seasonal_periods: int | None,
    executor: Callable[[], Executor] | None = None,
) -> ForecastReply:
    """Fit Holt-Winters on the history, forecast `horizon` periods, report the backtest on
    the last quarter of the history (at least one period). The fit runs on the executor
    `executor()` gives (a worker process in the service, started only when a fit needs
    it), else on a thread."""
    history = await trends(uow, metric=metric, by="none", interval=interval, start=start, end=end)
    points = history.series[0].points if history.series else []
    values = [p.value for p in points]
    if len(values) < MIN_HISTORY:
        raise NotEnoughHistory(
            f"forecasting needs at least {MIN_HISTORY} {interval}s of history; "
            f"{start}..{end} holds {len(values)}"
        )
    # The holdout depends on the history only, so one fit serves every requested horizon.
    holdout = max(1, len(values) // 4)
    train = values[:-holdout]
    method = method_name(seasonal_periods, len(values))
    if len(set(values)) == 1:
        # A flat history (a shop with no orders yet: all zeros) continues flat; no model is
        # fitted, so no worker process starts for it.
        predicted_holdout, predicted = [values[0]] * holdout, [values[0]] * horizon
        method = CONSTANT_METHOD
    else:
        predicted_holdout, predicted = await _fit_elsewhere(
            executor, train, holdout, values, horizon, seasonal_periods, f"{start}..{end}"
        )
    if not all(math.isfinite(v) for v in (*predicted_holdout, *predicted)):
        raise NotEnoughHistory(f"the model fitted to {start}..{end} gives no usable forecast")
    mae, mape = _errors(values[-holdout:], predicted_holdout)
    future, bucket = [], next_period(points[-1].period, interval)
    for value in predicted:
        future.append(ForecastPoint(period=bucket, value=round(value, 2)))
        bucket = next_period(bucket, interval)
    return ForecastReply(
        metric=metric,
        interval=interval,
        method=method,
        history=[ForecastPoint(period=p.period, value=p.value) for p in points],
        forecast=future,
        backtest=Backtest(
            holdout=holdout,
            mae=round(mae, 4),
            mape=round(mape, 4) if mape is not None else None,
            actual=values[-holdout:],
            predicted=[round(v, 2) for v in predicted_holdout],
        ),
        fitted_at=utcnow(),
        age_s=0.0,
    )
