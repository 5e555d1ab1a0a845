"""The reports' arithmetic against in-memory stores: the pipeline per stage and owner, the
weighted forecast per month, the win rate, and the backtest's MAE and MAPE."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rapport_sales.opportunities.models import SalesOpportunity, SalesStageChange
from rapport_sales.reports import service
from rapport_sales.testing import DEFAULT_STAGES, FakeSalesUnitOfWork

PROBABILITY = {key: Decimal(probability) for key, _name, probability, _o in DEFAULT_STAGES}
T0 = datetime(2027, 1, 5, 9, tzinfo=UTC)


def a_deal(
    uow: FakeSalesUnitOfWork, amount: str, stage: str = "lead", **fields: Any
) -> SalesOpportunity:
    fields.setdefault("created_at", T0)
    fields.setdefault("status", stage if stage in ("won", "lost") else "open")
    deal = SalesOpportunity(
        pipeline_id="default",
        account_id="acme",
        name="deal",
        amount=Decimal(amount),
        currency=fields.pop("currency", "EUR"),
        stage=stage,
        probability=PROBABILITY[stage],
        updated_at=fields["created_at"],
        **fields,
    )
    uow.rows.add(deal)
    return deal


def moved(uow: FakeSalesUnitOfWork, deal: SalesOpportunity, *stages: tuple[str, datetime]) -> None:
    for stage, at in stages:
        uow.rows.add(SalesStageChange(opportunity_id=deal.id, to_stage=stage, changed_at=at))


class TestPipelineReport:
    async def test_open_deals_are_summed_per_stage_in_order_and_per_owner_per_currency(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        a_deal(uow, "1000", owner="rep:a")
        a_deal(uow, "3000", owner="rep:b")
        a_deal(uow, "2000", "proposal", owner="rep:a")
        a_deal(uow, "500", "proposal", owner="rep:a", currency="USD")
        a_deal(uow, "9999", "won", owner="rep:a")

        report = await service.pipeline_report(uow, "default", None)

        assert [
            (s.stage, s.position, s.currency, s.count, s.amount, s.weighted) for s in report.stages
        ] == [
            ("lead", 0, "EUR", 2, Decimal("4000.00"), Decimal("400.00")),
            ("proposal", 2, "EUR", 1, Decimal("2000.00"), Decimal("1000.00")),
            ("proposal", 2, "USD", 1, Decimal("500.00"), Decimal("250.00")),
        ]
        assert [(o.owner, o.currency, o.count, o.weighted) for o in report.owners] == [
            ("rep:a", "EUR", 2, Decimal("1100.00")),
            ("rep:a", "USD", 1, Decimal("250.00")),
            ("rep:b", "EUR", 1, Decimal("300.00")),
        ]

    async def test_one_owner_s_deals(self, uow: FakeSalesUnitOfWork) -> None:
        a_deal(uow, "1000", owner="rep:a")
        a_deal(uow, "3000", owner="rep:b")

        report = await service.pipeline_report(uow, "default", "rep:b")

        assert [(s.stage, s.amount) for s in report.stages] == [("lead", Decimal("3000.00"))]


class TestWeightedForecast:
    async def test_each_month_sums_amount_times_probability_and_late_deals_are_overdue(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        a_deal(uow, "1000", expected_close_date=date(2027, 3, 15))
        a_deal(uow, "2000", "proposal", expected_close_date=date(2027, 3, 31))
        a_deal(uow, "4000", "negotiation", expected_close_date=date(2027, 4, 2))
        a_deal(uow, "8000", expected_close_date=date(2027, 5, 1))  # after the window
        a_deal(uow, "500", expected_close_date=date(2027, 2, 20))  # overdue
        a_deal(uow, "700")  # no date
        a_deal(uow, "900", "won", expected_close_date=date(2027, 3, 15))

        report = await service.weighted_forecast(uow, date(2027, 3, 10), 2, None)

        assert [(m.month, m.count, m.amount, m.weighted) for m in report.months] == [
            (date(2027, 3, 1), 2, Decimal("3000.00"), Decimal("1100.00")),
            (date(2027, 4, 1), 1, Decimal("4000.00"), Decimal("3000.00")),
        ]
        assert [(m.month, m.weighted) for m in report.overdue] == [
            (date(2027, 2, 1), Decimal("50.00"))
        ]


class TestWinRate:
    async def test_won_over_closed_and_the_average_cycle_per_owner_and_in_total(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        a_deal(uow, "1000", "won", owner="rep:a", closed_at=T0 + timedelta(days=10))
        a_deal(uow, "5000", "lost", owner="rep:a", closed_at=T0 + timedelta(days=4))
        a_deal(uow, "3000", "won", owner="rep:b", closed_at=T0 + timedelta(days=2))
        a_deal(uow, "7000", "won", owner="rep:b", closed_at=T0 + timedelta(days=40))
        a_deal(uow, "100", owner="rep:b")

        report = await service.win_rate(uow, T0, T0 + timedelta(days=30), None)

        assert (report.won, report.lost, report.win_rate) == (2, 1, 0.6667)
        assert (report.won_amount, report.average_cycle_days) == (Decimal("4000.00"), 5.33)
        assert [
            (o.owner, o.won, o.lost, o.win_rate, o.won_amount, o.average_cycle_days)
            for o in report.owners
        ] == [
            ("rep:a", 1, 1, 0.5, Decimal("1000.00"), 7.0),
            ("rep:b", 1, 0, 1.0, Decimal("3000.00"), 2.0),
        ]

    async def test_nothing_closed_has_no_rate(self, uow: FakeSalesUnitOfWork) -> None:
        report = await service.win_rate(uow, None, None, None)

        assert (report.won, report.win_rate, report.average_cycle_days) == (0, None, None)


class TestBacktest:
    async def test_the_forecast_then_is_scored_against_what_was_won_after(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        as_of = datetime(2027, 1, 31, 12, tzinfo=UTC)
        won = a_deal(
            uow,
            "10000",
            "won",
            expected_close_date=date(2027, 2, 15),
            closed_at=datetime(2027, 2, 10, tzinfo=UTC),
        )
        moved(uow, won, ("lead", T0), ("proposal", datetime(2027, 1, 20, tzinfo=UTC)))
        moved(uow, won, ("won", datetime(2027, 2, 10, tzinfo=UTC)))
        later = a_deal(uow, "4000", "negotiation", expected_close_date=date(2027, 3, 10))
        moved(uow, later, ("lead", T0), ("negotiation", datetime(2027, 2, 5, tzinfo=UTC)))
        a_deal(  # opened after as_of: not in the forecast, but won in March
            uow,
            "2000",
            "won",
            created_at=datetime(2027, 2, 3, tzinfo=UTC),
            expected_close_date=date(2027, 3, 1),
            closed_at=datetime(2027, 3, 2, tzinfo=UTC),
        )
        a_deal(uow, "999", currency="USD", expected_close_date=date(2027, 2, 15))
        a_deal(
            uow,
            "999",
            "lost",
            expected_close_date=date(2027, 2, 15),
            closed_at=datetime(2027, 1, 25, tzinfo=UTC),
        )

        backtest = await service.backtest(uow, as_of, 2, "EUR")

        assert [(m.month, m.forecast, m.actual) for m in backtest.months] == [
            (date(2027, 2, 1), Decimal("5000.00"), Decimal("10000.00")),
            (date(2027, 3, 1), Decimal("400.00"), Decimal("2000.00")),
        ]
        assert (backtest.mae, backtest.mape) == (Decimal("3300.00"), 0.65)
