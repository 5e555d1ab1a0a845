"""The reports routes: the pipeline, the forecast and its backtest, the win rate."""

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query

from rapport_events.base import utcnow
from rapport_events.limits import SaneDate, SaneDatetime
from rapport_sales.deps import OwnerFilter, ProfileDep, SettingsDep, UnitOfWorkDep, require_token
from rapport_sales.errors import REFERENCE_NOT_FOUND, InvalidRequest
from rapport_sales.opportunities import service as opportunities
from rapport_sales.opportunities.service import DEFAULT_PIPELINE
from rapport_sales.reports import service
from rapport_sales.reports.models import Backtest, ForecastReport, PipelineReport, WinRateReport

router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/reports/pipeline", tags=["reports"], responses=REFERENCE_NOT_FOUND)
async def pipeline_report(
    uow: UnitOfWorkDep,
    pipeline_id: Annotated[str, Query(max_length=64)] = DEFAULT_PIPELINE,
    owner: OwnerFilter = None,
) -> PipelineReport:
    """Open deals per stage and per owner: count, amount, and amount × stage probability."""
    await opportunities.stages_of(uow, pipeline_id)
    return await service.pipeline_report(uow, pipeline_id, owner)


@router.get("/reports/forecast", tags=["reports"])
async def forecast_report(
    uow: UnitOfWorkDep,
    profile: ProfileDep,
    start: Annotated[SaneDate | None, Query(alias="from")] = None,
    months: Annotated[int, Query(ge=1, le=24)] = 6,
    owner: OwnerFilter = None,
) -> ForecastReport:
    """The weighted pipeline per month of expected close, next to profile's forecast of
    revenue from the order history."""
    report = await service.weighted_forecast(uow, start or utcnow().date(), months, owner)
    try:
        report.historical = await profile.revenue_forecast(months)
    except (httpx.HTTPError, ValueError) as error:
        report.historical_error = str(error) or type(error).__name__
    return report


@router.get("/reports/forecast/backtest", tags=["reports"])
async def forecast_backtest(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    as_of: SaneDatetime,
    months: Annotated[int, Query(ge=1, le=24)] = 3,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> Backtest:
    """The weighted forecast as it stood at `as_of` against the amounts won after it."""
    if as_of.tzinfo is None:
        raise InvalidRequest("as_of needs a time zone")
    return await service.backtest(uow, as_of, months, currency or settings.default_currency)


@router.get("/reports/win-rate", tags=["reports"])
async def win_rate_report(
    uow: UnitOfWorkDep,
    start: Annotated[SaneDatetime | None, Query(alias="from")] = None,
    end: Annotated[SaneDatetime | None, Query(alias="to")] = None,
    owner: OwnerFilter = None,
) -> WinRateReport:
    """Won / (won + lost) and the average days from open to close, of deals closed in
    [from, to), in total and per owner."""
    return await service.win_rate(uow, start, end, owner)
