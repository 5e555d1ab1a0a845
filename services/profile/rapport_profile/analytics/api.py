"""Metrics, trends, tiers and forecast routes."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from rapport_events.limits import CustomerIdPath
from rapport_profile.analytics import forecasts, service
from rapport_profile.analytics.forecasts import Forecaster
from rapport_profile.analytics.models import MetricsPublic
from rapport_profile.analytics.periods import requested_range
from rapport_profile.analytics.service import (
    Dimension,
    ForecastReply,
    Interval,
    Metric,
    TiersReply,
    TrendsReply,
)
from rapport_profile.deps import (
    UnitOfWorkDep,
    require_token,
)
from rapport_profile.errors import NOT_FOUND
from rapport_profile.timeline import service as timeline_service

router = APIRouter(dependencies=[Depends(require_token)])


@router.get(
    "/customers/{customer_id}/metrics",
    tags=["activity"],
    response_model=MetricsPublic,
    responses=NOT_FOUND,
)
async def read_metrics(customer_id: CustomerIdPath, uow: UnitOfWorkDep) -> MetricsPublic:
    """Orders, revenue, RFM scores, lifetime value and tier, by the one value method."""
    owner = await timeline_service.owner_of(uow, customer_id)
    return await service.metrics_of(uow, owner)


@router.get("/analytics/trends", tags=["analytics"], response_model=TrendsReply)
async def read_trends(
    uow: UnitOfWorkDep,
    metric: Metric = "revenue",
    by: Dimension = "none",
    interval: Interval = "week",
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> TrendsReply:
    """Revenue, orders, average order or new customers per period, by a demographic."""
    start, end = requested_range(start, end, interval)
    return await service.trends(uow, metric=metric, by=by, interval=interval, start=start, end=end)


@router.get("/analytics/tiers", tags=["analytics"], response_model=TiersReply)
async def read_tiers(uow: UnitOfWorkDep) -> TiersReply:
    """Customers ranked by profitability into platinum, gold, silver, bronze (and none)."""
    return await service.tiers(uow)


@router.get("/analytics/forecast", tags=["analytics"], response_model=ForecastReply)
async def read_forecast(
    request: Request,
    metric: Metric = "revenue",
    interval: Interval = "week",
    periods: Annotated[int, Query(ge=1, le=forecasts.MAX_HORIZON)] = 4,
    seasonal_periods: Annotated[int | None, Query(ge=2, le=52)] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> ForecastReply:
    """Forecast the next periods (Holt-Winters, fitted ahead of time), with the backtest
    error (MAE, MAPE) and when the model was fitted."""
    requested_range(start, end, interval)  # a bad window is a 422 before any fit
    forecaster: Forecaster = request.app.state.forecaster
    return await forecaster.forecast((metric, interval, seasonal_periods, start, end), periods)
