"""The bodies of the reports: the pipeline by stage and owner, the forecast per month, the
win rate, and the forecast's backtest."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel


class StageTotal(BaseModel):
    stage: str
    name: str
    position: int
    probability: Decimal
    currency: str
    count: int
    amount: Decimal
    weighted: Decimal


class OwnerTotal(BaseModel):
    owner: str | None
    currency: str
    count: int
    amount: Decimal
    weighted: Decimal


class PipelineReport(BaseModel):
    """Open opportunities of a pipeline by stage (in stage order) and by owner."""

    pipeline_id: str
    stages: list[StageTotal]
    owners: list[OwnerTotal]


class ForecastMonth(BaseModel):
    month: date
    currency: str
    count: int
    amount: Decimal
    weighted: Decimal


class ForecastReport(BaseModel):
    """The open pipeline's weighted forecast per month of expected close, next to
    profile's forecast of revenue from the sales history (None when profile did not answer)."""

    method: str = "weighted pipeline: amount × stage win probability, by expected close month"
    months: list[ForecastMonth]
    overdue: list[ForecastMonth]
    historical: dict[str, Any] | None = None
    historical_error: str | None = None


class OwnerWinRate(BaseModel):
    owner: str | None
    won: int
    lost: int
    win_rate: float | None
    won_amount: Decimal
    average_cycle_days: float | None


class WinRateReport(BaseModel):
    """Opportunities closed in [from, to): won / (won + lost), and days from open to close."""

    won: int
    lost: int
    win_rate: float | None
    won_amount: Decimal
    average_cycle_days: float | None
    owners: list[OwnerWinRate]


class BacktestMonth(BaseModel):
    month: date
    forecast: Decimal
    actual: Decimal


class Backtest(BaseModel):
    """The weighted forecast as it stood at `as_of` against what was won after it."""

    as_of: datetime
    currency: str
    months: list[BacktestMonth]
    mae: Decimal
    mape: float | None
