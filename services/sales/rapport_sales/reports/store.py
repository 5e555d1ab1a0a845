"""Every query of the reports: open deals grouped by stage, owner and close day; closed
deals per owner; what the backtest replays (deals then, their stages then, wins since).

`ReportStore` is what the reports ask of it; `SqlReportStore` answers on the transaction's
session, and `rapport_sales.testing` has the in-memory fake."""

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Float, case, cast, func, literal
from sqlalchemy.sql import ColumnElement
from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_sales.opportunities.models import SalesOpportunity, SalesStage, SalesStageChange

# A grouped row: the columns it is grouped by, then its aggregates.
Cell = tuple[Any, ...]


class ReportStore(Protocol):
    async def open_by_stage_and_owner(self, pipeline_id: str, owner: str | None) -> Sequence[Cell]:
        """(stage, owner, currency, count, amount, weighted) of the pipeline's open deals."""
        ...

    async def open_by_close_day(self, end: date, owner: str | None) -> Sequence[Cell]:
        """(expected close day, currency, count, amount, weighted) of the open deals expected
        to close before `end`."""
        ...

    async def closed_by_owner(
        self, start: datetime | None, end: datetime | None, owner: str | None
    ) -> Sequence[Cell]:
        """(owner, won, lost, won amount, average cycle days) of the deals closed in the window."""
        ...

    async def dated_deals_opened_by(self, as_of: datetime, currency: str) -> list[SalesOpportunity]:
        """The deals in `currency` opened by `as_of` that have an expected close date."""
        ...

    async def stage_probabilities(self) -> dict[tuple[str, str], Decimal]:
        """The win probability of every stage, by (pipeline id, stage key)."""
        ...

    async def stages_at(self, opportunity_ids: list[str], as_of: datetime) -> dict[str, str]:
        """Each opportunity's stage at `as_of`: the last change up to then."""
        ...

    async def won_since(
        self, since: datetime, currency: str
    ) -> list[tuple[datetime | None, Decimal]]:
        """(closed at, amount) of the deals in `currency` won since `since`."""
        ...


def _open_in(pipeline_id: str, owner: str | None) -> list[ColumnElement[bool]]:
    where = [
        col(SalesOpportunity.pipeline_id) == pipeline_id,
        col(SalesOpportunity.status) == "open",
    ]
    if owner is not None:
        where.append(col(SalesOpportunity.owner) == owner)
    return where


def _cycle_days(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        seconds = func.extract(
            "epoch", col(SalesOpportunity.closed_at) - col(SalesOpportunity.created_at)
        )
        return cast(seconds, Float) / 86400.0
    return func.julianday(SalesOpportunity.closed_at) - func.julianday(SalesOpportunity.created_at)


class SqlReportStore(SqlStore):
    async def open_by_stage_and_owner(self, pipeline_id: str, owner: str | None) -> Sequence[Cell]:
        cells = await self.session.exec(
            select(  # type: ignore[call-overload]
                SalesOpportunity.stage,
                SalesOpportunity.owner,
                SalesOpportunity.currency,
                func.count(),
                func.sum(SalesOpportunity.amount),
                func.sum(SalesOpportunity.amount * SalesOpportunity.probability),
            )
            .where(*_open_in(pipeline_id, owner))
            .group_by(SalesOpportunity.stage, SalesOpportunity.owner, SalesOpportunity.currency)
        )
        return list(cells.all())

    async def open_by_close_day(self, end: date, owner: str | None) -> Sequence[Cell]:
        where = [col(SalesOpportunity.status) == "open"]
        if owner is not None:
            where.append(col(SalesOpportunity.owner) == owner)
        rows = await self.session.exec(
            select(  # type: ignore[call-overload]
                SalesOpportunity.expected_close_date,
                SalesOpportunity.currency,
                func.count(),
                func.sum(SalesOpportunity.amount),
                func.sum(SalesOpportunity.amount * SalesOpportunity.probability),
            )
            .where(*where, col(SalesOpportunity.expected_close_date).is_not(None))
            .where(col(SalesOpportunity.expected_close_date) < end)
            .group_by(SalesOpportunity.expected_close_date, SalesOpportunity.currency)
        )
        return list(rows.all())

    async def closed_by_owner(
        self, start: datetime | None, end: datetime | None, owner: str | None
    ) -> Sequence[Cell]:
        won = func.sum(case((col(SalesOpportunity.status) == "won", 1), else_=0))
        lost = func.sum(case((col(SalesOpportunity.status) == "lost", 1), else_=0))
        won_amount = func.sum(
            case((col(SalesOpportunity.status) == "won", SalesOpportunity.amount), else_=literal(0))
        )
        cycle = func.avg(
            _cycle_days(self.session.bind.dialect.name if self.session.bind else "sqlite")
        )
        query = select(SalesOpportunity.owner, won, lost, won_amount, cycle).where(  # type: ignore[call-overload]
            col(SalesOpportunity.status).in_(("won", "lost"))
        )
        if start is not None:
            query = query.where(col(SalesOpportunity.closed_at) >= start)
        if end is not None:
            query = query.where(col(SalesOpportunity.closed_at) < end)
        if owner is not None:
            query = query.where(col(SalesOpportunity.owner) == owner)
        return list((await self.session.exec(query.group_by(SalesOpportunity.owner))).all())

    async def dated_deals_opened_by(self, as_of: datetime, currency: str) -> list[SalesOpportunity]:
        opened = await self.session.exec(
            select(SalesOpportunity).where(
                col(SalesOpportunity.created_at) <= as_of,
                col(SalesOpportunity.currency) == currency,
                col(SalesOpportunity.expected_close_date).is_not(None),
            )
        )
        return list(opened.all())

    async def stage_probabilities(self) -> dict[tuple[str, str], Decimal]:
        stages = (await self.session.exec(select(SalesStage))).all()
        return {(stage.pipeline_id, stage.key): stage.probability for stage in stages}

    async def stages_at(self, opportunity_ids: list[str], as_of: datetime) -> dict[str, str]:
        stages: dict[str, str] = {}
        for start in range(0, len(opportunity_ids), 1000):
            chunk = opportunity_ids[start : start + 1000]
            rows = await self.session.exec(
                select(SalesStageChange)
                .where(
                    col(SalesStageChange.opportunity_id).in_(chunk),
                    col(SalesStageChange.changed_at) <= as_of,
                )
                .order_by(col(SalesStageChange.changed_at), col(SalesStageChange.id))
            )
            for change in rows.all():
                stages[change.opportunity_id] = change.to_stage
        return stages

    async def won_since(
        self, since: datetime, currency: str
    ) -> list[tuple[datetime | None, Decimal]]:
        won = await self.session.exec(
            select(col(SalesOpportunity.closed_at), col(SalesOpportunity.amount)).where(
                col(SalesOpportunity.status) == "won",
                col(SalesOpportunity.currency) == currency,
                col(SalesOpportunity.closed_at) >= since,
            )
        )
        return list(won.all())
