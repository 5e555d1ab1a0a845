"""Pipeline, forecast and win-rate reports, computed in the database (set-based).

The weighted forecast of a month is the sum over open opportunities expected to close in
it of amount × the win probability of their stage. The backtest replays that forecast as
it stood at a past date (each opportunity's stage then, from the stage history) and
compares it with the amounts actually won in each month after.
"""

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rapport_sales.reports.models import (
    Backtest,
    BacktestMonth,
    ForecastMonth,
    ForecastReport,
    OwnerTotal,
    OwnerWinRate,
    PipelineReport,
    StageTotal,
    WinRateReport,
)
from rapport_sales.shared import aware
from rapport_sales.unit_of_work import SalesUnitOfWork

CENT = Decimal("0.01")


def month_of(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


async def pipeline_report(
    uow: SalesUnitOfWork, pipeline_id: str, owner: str | None
) -> PipelineReport:
    """Count, amount and weighted amount of the open deals per stage and per owner.

    One scan grouped by (stage, owner, currency) — a few hundred rows whatever the number
    of deals — folded into both views here.
    """
    cells = await uow.reports.open_by_stage_and_owner(pipeline_id, owner)
    by_stage: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    by_owner: dict[tuple[str | None, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for stage, name, currency, count, total, weight in cells:
        for sums in (by_stage[(stage, currency)], by_owner[(name, currency)]):
            sums[0] += count
            sums[1] += Decimal(str(total))
            sums[2] += Decimal(str(weight))
    stages = {stage.key: stage for stage in await uow.opportunities.stages_of_pipeline(pipeline_id)}
    stage_rows = [
        StageTotal(
            stage=key,
            name=stages[key].name if key in stages else key,
            position=stages[key].position if key in stages else len(stages),
            probability=stages[key].probability if key in stages else Decimal(0),
            currency=currency,
            count=int(sums[0]),
            amount=_money(sums[1]),
            weighted=_money(sums[2]),
        )
        for (key, currency), sums in by_stage.items()
    ]
    owner_rows = [
        OwnerTotal(
            owner=name,
            currency=currency,
            count=int(sums[0]),
            amount=_money(sums[1]),
            weighted=_money(sums[2]),
        )
        for (name, currency), sums in by_owner.items()
    ]
    return PipelineReport(
        pipeline_id=pipeline_id,
        stages=sorted(stage_rows, key=lambda row: (row.position, row.currency)),
        owners=sorted(owner_rows, key=lambda row: (row.owner or "", row.currency)),
    )


async def weighted_forecast(
    uow: SalesUnitOfWork, start: date, months: int, owner: str | None
) -> ForecastReport:
    """Weighted amounts of the open deals per expected close month, from `start`'s month.

    Grouped by day in the database (portable) and folded into months here: at most a few
    thousand rows whatever the number of opportunities.
    """
    first, end = month_of(start), add_months(start, months)
    rows = await uow.reports.open_by_close_day(end, owner)
    ahead: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    late: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for day, currency, count, total, weight in rows:
        bucket = month_of(day)
        into = ahead if bucket >= first else late
        sums = into[(bucket, currency)]
        sums[0] += count
        sums[1] += Decimal(str(total))
        sums[2] += Decimal(str(weight))
    return ForecastReport(months=_months(ahead), overdue=_months(late))


def _months(sums: dict[tuple[date, str], list[Decimal]]) -> list[ForecastMonth]:
    return [
        ForecastMonth(
            month=month,
            currency=currency,
            count=int(values[0]),
            amount=_money(values[1]),
            weighted=_money(values[2]),
        )
        for (month, currency), values in sorted(sums.items())
    ]


async def win_rate(
    uow: SalesUnitOfWork, start: datetime | None, end: datetime | None, owner: str | None
) -> WinRateReport:
    """Win rate and average cycle time of the deals closed in the window, per owner."""
    rows = await uow.reports.closed_by_owner(start, end, owner)
    owners = [
        OwnerWinRate(
            owner=name,
            won=int(w or 0),
            lost=int(lo or 0),
            win_rate=_rate(w, lo),
            won_amount=_money(amount),
            average_cycle_days=round(float(days), 2) if days is not None else None,
        )
        for name, w, lo, amount, days in rows
    ]
    total_won = sum(row.won for row in owners)
    total_lost = sum(row.lost for row in owners)
    closed = total_won + total_lost
    average = (
        round(
            sum((row.average_cycle_days or 0) * (row.won + row.lost) for row in owners) / closed, 2
        )
        if closed
        else None
    )
    return WinRateReport(
        won=total_won,
        lost=total_lost,
        win_rate=_rate(total_won, total_lost),
        won_amount=_money(sum((row.won_amount for row in owners), Decimal(0))),
        average_cycle_days=average,
        owners=sorted(owners, key=lambda row: row.owner or ""),
    )


def _rate(won: Any, lost: Any) -> float | None:
    closed = int(won or 0) + int(lost or 0)
    return round(int(won or 0) / closed, 4) if closed else None


async def backtest(uow: SalesUnitOfWork, as_of: datetime, months: int, currency: str) -> Backtest:
    """Replay the forecast at `as_of` (stages then, from the history) and score it."""
    opened = await uow.reports.dated_deals_opened_by(as_of, currency)
    candidates = {
        row.id: row for row in opened if row.closed_at is None or aware(row.closed_at) > as_of
    }
    stage_then = await uow.reports.stages_at(list(candidates), as_of)
    probabilities = await uow.reports.stage_probabilities()
    first = add_months(month_of(as_of.date()), 1)
    forecast: dict[date, Decimal] = defaultdict(Decimal)
    for row in candidates.values():
        assert row.expected_close_date is not None
        stage = stage_then.get(row.id, row.stage)
        probability = probabilities.get((row.pipeline_id, stage), Decimal(0))
        forecast[month_of(row.expected_close_date)] += row.amount * probability
    since = datetime.combine(first, datetime.min.time(), as_of.tzinfo)
    actual: dict[date, Decimal] = defaultdict(Decimal)
    for closed_at, amount in await uow.reports.won_since(since, currency):
        assert closed_at is not None  # a won deal is closed
        actual[month_of(aware(closed_at).date())] += Decimal(str(amount))
    scored = [
        BacktestMonth(month=month, forecast=_money(forecast[month]), actual=_money(actual[month]))
        for month in (add_months(first, n) for n in range(months))
    ]
    errors = [abs(m.forecast - m.actual) for m in scored]
    relative = [abs(m.forecast - m.actual) / m.actual for m in scored if m.actual]
    return Backtest(
        as_of=as_of,
        currency=currency,
        months=scored,
        mae=_money(sum(errors, Decimal(0)) / len(scored)) if scored else Decimal(0),
        mape=round(float(sum(relative) / len(relative)), 4) if relative else None,
    )
