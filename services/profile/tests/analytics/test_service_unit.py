"""The analytics reads against in-memory stores, given the rows their queries answer: a
customer's metrics and RFM scores, the tiers, trends by period and group, the forecast's
refusals and flat histories, and the metrics a refresh writes and publishes."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rapport_events.base import utcnow
from rapport_events.types import CustomerValueChanged
from rapport_profile.analytics import projection, service
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.analytics.service import NotEnoughHistory
from rapport_profile.customers.models import Customer
from rapport_profile.testing import FakeProfileUnitOfWork

MONDAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> None:
    uow.rows.add(Customer(id=customer_id, email=f"{customer_id}@example.com", **fields))


def an_order(
    uow: FakeProfileUnitOfWork,
    customer_id: str,
    revenue: str,
    at: datetime,
    cost: str | None = None,
) -> None:
    uow.rows.add(
        Order(
            order_id=f"o-{len(uow.rows.all(Order))}",
            customer_id=customer_id,
            subject_id=customer_id,
            revenue=Decimal(revenue),
            cost=Decimal(cost) if cost is not None else None,
            occurred_at=at,
        )
    )


def some_metrics(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> None:
    uow.rows.add(CustomerMetrics(customer_id=customer_id, **fields))


def values(reply: service.TrendsReply) -> dict[str, list[float]]:
    return {series.group: [p.value for p in series.points] for series in reply.series}


class TestCustomerMetrics:
    async def test_without_orders_every_score_is_empty_and_the_points_are_shown(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        some_metrics(uow, "ada", loyalty_points=120)

        metrics = await service.metrics_of(uow, "ada")

        assert (metrics.orders, metrics.revenue, metrics.tier) == (0, Decimal("0.00"), "none")
        assert metrics.rfm.combined is None and metrics.average_order_value is None
        assert metrics.loyalty_points == 120

    async def test_a_customer_never_counted_has_zero_metrics(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        metrics = await service.metrics_of(uow, "nobody")

        assert (metrics.customer_id, metrics.orders, metrics.loyalty_points) == ("nobody", 0, 0)

    async def test_rfm_scores_average_and_recency_from_the_stored_metrics(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        now = utcnow()
        some_metrics(
            uow,
            "ada",
            orders=5,
            revenue=Decimal("600"),
            profit=Decimal("240.456"),
            lifetime_value=Decimal("1200"),
            tier="gold",
            first_order_at=now - timedelta(days=100),
            last_order_at=now - timedelta(days=10),
        )

        metrics = await service.metrics_of(uow, "ada")

        assert (metrics.rfm.recency, metrics.rfm.frequency, metrics.rfm.monetary) == (5, 4, 3)
        assert metrics.rfm.combined == "543"
        assert (metrics.average_order_value, metrics.recency_days) == (Decimal("120.00"), 10)
        assert (metrics.profit, metrics.tier, metrics.profitability_tier) == (
            Decimal("240.46"),
            "gold",
            "gold",
        )


class TestTiers:
    async def test_active_customers_grouped_by_tier_with_their_sums(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        for customer_id in ("ada", "grace", "bob"):
            a_customer(uow, customer_id)
        a_customer(uow, "dupe", status="merged", merged_into="ada")
        some_metrics(uow, "ada", orders=2, revenue=Decimal(1200), profit=Decimal(900), tier="gold")
        some_metrics(uow, "grace", orders=1, revenue=Decimal(400), profit=Decimal(300), tier="gold")
        some_metrics(uow, "bob", orders=0, loyalty_points=50)
        some_metrics(uow, "dupe", orders=9, revenue=Decimal(9000), tier="platinum")

        reply = await service.tiers(uow)

        by_tier = {summary.tier: summary for summary in reply.tiers}
        assert reply.ranked_customers == 2
        gold = by_tier["gold"]
        assert (gold.customers, gold.revenue, gold.profit) == (2, 1600.0, 1200.0)
        assert (gold.min_profit, gold.max_profit) == (300.0, 900.0)
        assert (by_tier["none"].customers, by_tier["platinum"].customers) == (1, 0)
        assert by_tier["platinum"].min_profit is None
        assert [summary.tier for summary in reply.tiers] == list(service.TIER_NAMES)


class TestTrends:
    async def test_revenue_by_country_per_week_an_unknown_buyer_apart(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada", country="GB")
        a_customer(uow, "grace", country="FR")
        a_customer(uow, "dupe", country="DE", status="merged", merged_into="ada")
        an_order(uow, "ada", "30", MONDAY)
        an_order(uow, "ada", "20", MONDAY + timedelta(days=8))
        an_order(uow, "grace", "50", MONDAY + timedelta(days=1))
        an_order(uow, "dupe", "10", MONDAY + timedelta(days=2))
        an_order(uow, "visitor-1", "5", MONDAY + timedelta(days=9))
        an_order(uow, "ada", "999", MONDAY + timedelta(days=20))  # after the range

        reply = await service.trends(
            uow,
            metric="revenue",
            by="country",
            interval="week",
            start=date(2026, 3, 2),
            end=date(2026, 3, 15),
        )

        assert [p.period for p in reply.series[0].points] == [date(2026, 3, 2), date(2026, 3, 9)]
        assert values(reply) == {"FR": [50.0, 0.0], "GB": [30.0, 20.0], "unknown": [10.0, 5.0]}

    async def test_the_average_order_per_period(self, uow: FakeProfileUnitOfWork) -> None:
        for revenue, days in (("30", 0), ("50", 1), ("10", 2), ("20", 8), ("5.25", 9)):
            an_order(uow, "ada", revenue, MONDAY + timedelta(days=days))

        reply = await service.trends(
            uow,
            metric="average_order",
            by="none",
            interval="week",
            start=date(2026, 3, 2),
            end=date(2026, 3, 22),
        )

        # 25.25 / 2 to the cent, a half going to the even cent (Decimal.quantize).
        assert values(reply) == {"all": [30.0, 12.62, 0.0]}

    async def test_new_customers_by_age_band_not_counting_merged_or_erased_records(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada", birth_date=date(1990, 6, 1), created_at=MONDAY)
        a_customer(uow, "grace", created_at=MONDAY + timedelta(days=18))
        a_customer(uow, "dupe", status="merged", merged_into="ada", created_at=MONDAY)
        a_customer(uow, "eve", status="erased", created_at=MONDAY)

        reply = await service.trends(
            uow,
            metric="new_customers",
            by="age_band",
            interval="month",
            start=date(2026, 3, 1),
            end=date(2026, 4, 30),
        )

        assert values(reply) == {"35-44": [1.0, 0.0], "unknown": [1.0, 0.0]}

    async def test_with_nothing_to_count_one_series_of_zeros(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        reply = await service.trends(
            uow,
            metric="orders",
            by="none",
            interval="day",
            start=date(2026, 3, 2),
            end=date(2026, 3, 4),
        )

        assert values(reply) == {"all": [0.0, 0.0, 0.0]}


class TestForecast:
    async def forecast(self, uow: FakeProfileUnitOfWork, days: int, horizon: int = 3) -> Any:
        start = date(2026, 3, 2)
        return await service.forecast(
            uow,
            metric="orders",
            interval="day",
            start=start,
            end=start + timedelta(days=days - 1),
            horizon=horizon,
            seasonal_periods=None,
        )

    async def test_too_short_a_history_is_refused(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(NotEnoughHistory, match="at least 6 days"):
            await self.forecast(uow, days=5)

    async def test_a_flat_history_continues_flat_without_a_fit(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        for day in range(8):
            an_order(uow, "ada", "10", MONDAY + timedelta(days=day))

        reply = await self.forecast(uow, days=8, horizon=3)

        assert reply.method == service.CONSTANT_METHOD
        assert [(p.period, p.value) for p in reply.forecast] == [
            (date(2026, 3, 10), 1.0),
            (date(2026, 3, 11), 1.0),
            (date(2026, 3, 12), 1.0),
        ]
        assert (reply.backtest.holdout, reply.backtest.mae, reply.backtest.mape) == (2, 0.0, 0.0)
        assert len(reply.history) == 8


class TestRefresh:
    async def test_the_totals_become_the_metrics_and_the_points_are_kept(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        an_order(uow, "ada", "100", MONDAY, cost="40")
        an_order(uow, "ada", "50", MONDAY + timedelta(days=10))
        an_order(uow, "grace", "70", MONDAY)
        some_metrics(uow, "ada", loyalty_points=70)

        await projection.refresh_values(uow, ["bob", "ada"])

        ada = uow.rows.get(CustomerMetrics, "ada")
        assert ada is not None
        assert (ada.orders, ada.revenue, ada.profit) == (2, Decimal("150.00"), Decimal("110.00"))
        assert (ada.first_order_at, ada.last_order_at) == (MONDAY, MONDAY + timedelta(days=10))
        assert (ada.lifetime_value, ada.tier, ada.loyalty_points) == (
            Decimal("440.00"),
            "silver",
            70,
        )
        assert uow.rows.get(CustomerMetrics, "grace") is None  # not asked for

    async def test_one_value_changed_each_in_id_order_a_customer_without_orders_at_zero(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        an_order(uow, "ada", "100", MONDAY, cost="40")
        an_order(uow, "ada", "50", MONDAY + timedelta(days=10))

        await projection.refresh_values(uow, ["bob", "ada"])

        ada, bob = uow.outbox.published(CustomerValueChanged)
        assert (ada.customer_id, ada.orders, ada.average_order_value) == (
            "ada",
            2,
            Decimal("75.00"),
        )
        assert (bob.customer_id, bob.orders, bob.tier, bob.lifetime_value) == (
            "bob",
            0,
            "none",
            Decimal("0.00"),
        )
        bob_row = uow.rows.get(CustomerMetrics, "bob")
        assert bob_row is not None and bob_row.orders == 0
