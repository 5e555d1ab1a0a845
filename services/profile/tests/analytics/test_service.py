"""Metrics (RFM scores, lifetime value, tiers), trends and forecasts on a real database."""

from concurrent.futures import Executor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from profile_testing import (
    DAY,
    SETTINGS,
    VALUE_CHANGED,
    deliver,
    order,
    published,
    register,
)

from rapport_events import value
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_profile.analytics import projection as analytics_projection
from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics.service import NotEnoughHistory
from rapport_profile.customers import service as customer_service
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


class TestMetrics:
    async def test_rfm_scores_lifetime_value_and_tiers_follow_the_one_value_method(
        self, sessions: SessionFactory
    ) -> None:
        ids = [await register(sessions, f"c{n}@example.com") for n in range(5)]
        for n, customer in enumerate(ids):
            for k in range(n + 1):  # customer n: n+1 orders of 10*(n+1), all on one day
                await deliver(
                    sessions,
                    order(customer, f"o-{n}-{k}", str(10 * (n + 1)), DAY + timedelta(days=n)),
                )

        async with sessions() as session:
            best = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), ids[4])
            worst = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), ids[0])
            tiers = await analytics_service.tiers(SqlProfileUnitOfWork(session))
            gold, _ = await customer_service.search_customers(session, tier="gold")

        assert (best.orders, best.revenue, best.average_order_value) == (
            5,
            Decimal("250.00"),
            Decimal("50.00"),
        )
        # Frequency by orders (5: 4), monetary by revenue (250: 2), recency by the days since
        # the last order; fixed cut-offs, whatever the other customers do.
        assert (best.rfm.frequency, best.rfm.monetary) == (4, 2)
        assert (worst.rfm.frequency, worst.rfm.monetary) == (1, 1)
        assert best.rfm.recency == value.recency_score(DAY + timedelta(days=4), utcnow())
        # 250 so far + 250 a year (tenure counted as one year) for 3 years.
        assert best.lifetime_value == Decimal("1000.00")
        assert (best.tier, worst.tier) == ("gold", "bronze")
        assert (best.profitability_tier, best.average_order) == ("gold", Decimal("50.00"))
        assert {t.tier: t.customers for t in tiers.tiers} == {
            "platinum": 0,
            "gold": 1,  # 1000
            "silver": 2,  # 640, 360
            "bronze": 2,  # 160, 40
            "none": 0,
        }
        assert [c.id for c in gold] == [ids[4]]

    async def test_a_customers_orders_of_one_run_publish_one_value_event(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        bob = await register(sessions, "bob@example.com")
        run = [
            order(ada, "o-1", "100", DAY),
            order(bob, "o-2", "40", DAY),
            order(ada, "o-3", "300", DAY + timedelta(days=730, hours=12), cost="100"),
        ]
        async with transaction(sessions) as session:
            await analytics_projection.record_orders(session, run, SETTINGS)

        values = [e.data for e in await published(sessions) if e.type == VALUE_CHANGED]
        assert sorted(v.customer_id for v in values) == sorted([ada, bob])  # type: ignore[attr-defined]
        mine = next(v for v in values if v.customer_id == ada)  # type: ignore[attr-defined]
        # Profit 300 over two years: 150 a year, three more years: 300 + 450.
        assert (mine.orders, mine.revenue, mine.profit, mine.lifetime_value, mine.tier) == (  # type: ignore[attr-defined]
            2,
            Decimal("400.00"),
            Decimal("300.00"),
            Decimal("750.00"),
            "silver",
        )
        async with sessions() as session:
            metrics = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), ada)
        assert (metrics.lifetime_value, metrics.tier) == (Decimal("750.00"), "silver")

    async def test_a_customer_without_orders_has_no_scores(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        async with sessions() as session:
            metrics = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), ada)
        assert (metrics.orders, metrics.rfm.combined, metrics.profitability_tier) == (
            0,
            None,
            "none",
        )


class TestTrends:
    async def test_revenue_by_country_per_week_matches_the_hand_computed_fixture(
        self, sessions: SessionFactory
    ) -> None:
        gb = await register(sessions, "gb@example.com", country="GB", birth_date="1990-06-01")
        us = await register(sessions, "us@example.com", country="US", birth_date="1960-01-01")
        fixture = [  # (customer, day offset from Monday 2 March, revenue)
            (gb, 0, "10.00"),
            (gb, 6, "5.50"),
            (us, 2, "100.00"),
            (gb, 7, "20.00"),
            (us, 13, "1.25"),
            (us, 14, "7.00"),
        ]
        for n, (customer, days, revenue) in enumerate(fixture):
            await deliver(sessions, order(customer, f"o-{n}", revenue, DAY + timedelta(days=days)))

        async with sessions() as session:
            by_country = await analytics_service.trends(
                SqlProfileUnitOfWork(session),
                metric="revenue",
                by="country",
                interval="week",
                start=date(2026, 3, 2),
                end=date(2026, 3, 22),
            )
            by_age = await analytics_service.trends(
                SqlProfileUnitOfWork(session),
                metric="orders",
                by="age_band",
                interval="month",
                start=date(2026, 3, 1),
                end=date(2026, 3, 31),
            )

        series = {s.group: [p.value for p in s.points] for s in by_country.series}
        assert series == {"GB": [15.5, 20.0, 0.0], "US": [100.0, 1.25, 7.0]}
        assert [p.period for p in by_country.series[0].points] == [
            date(2026, 3, 2),
            date(2026, 3, 9),
            date(2026, 3, 16),
        ]
        ages = {s.group: [p.value for p in s.points] for s in by_age.series}
        assert ages == {"35-44": [3.0], "65+": [3.0]}


class TestForecast:
    async def test_holt_winters_continues_a_trend_and_reports_its_backtest(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))

        async with sessions() as session:
            reply = await analytics_service.forecast(
                SqlProfileUnitOfWork(session),
                metric="revenue",
                interval="week",
                start=start,
                end=start + timedelta(weeks=9, days=6),
                horizon=2,
                seasonal_periods=None,
            )
            with pytest.raises(NotEnoughHistory):
                await analytics_service.forecast(
                    SqlProfileUnitOfWork(session),
                    metric="revenue",
                    interval="week",
                    start=start,
                    end=start + timedelta(weeks=2),
                    horizon=2,
                    seasonal_periods=None,
                )

        assert "Holt-Winters" in reply.method
        assert [p.period for p in reply.forecast] == [date(2026, 3, 16), date(2026, 3, 23)]
        assert 180 <= reply.forecast[0].value <= 215
        assert reply.backtest.holdout == 2
        assert reply.backtest.mae < 20 and reply.backtest.mape is not None

    async def test_a_flat_history_continues_flat_without_starting_a_worker(
        self, sessions: SessionFactory
    ) -> None:
        def no_worker() -> Executor:
            raise AssertionError("a worker was asked for a history with nothing to fit")

        async with sessions() as session:
            reply = await analytics_service.forecast(
                SqlProfileUnitOfWork(session),
                metric="revenue",
                interval="week",
                start=date(2026, 1, 5),
                end=date(2026, 3, 15),
                horizon=3,
                seasonal_periods=None,
                executor=no_worker,
            )

        assert [p.value for p in reply.history] == [0.0] * 10
        assert [p.value for p in reply.forecast] == [0.0, 0.0, 0.0]
        assert (reply.method, reply.backtest.mae) == (analytics_service.CONSTANT_METHOD, 0.0)
