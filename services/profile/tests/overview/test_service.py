"""The customer overview on a real database (SQLite and PostgreSQL): its parts, and spend
per month summed by the database."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from profile_testing import DAY, consent, deliver, order, register

from rapport_events.db import SessionFactory, read_transaction
from rapport_events.types import LoyaltyPointsEarned
from rapport_profile.errors import CustomerNotFound
from rapport_profile.overview import service
from rapport_profile.unit_of_work import SqlProfileUnitOfWork

# Two hours east of UTC: 00:30 on 1 April there is still March in UTC.
PLUS_TWO = timezone(timedelta(hours=2))


async def overview(
    sessions: SessionFactory, customer_id: str, types: list[str] | None = None, limit: int = 50
) -> service.CustomerOverview:
    async with read_transaction(sessions) as session:
        return await service.overview(
            SqlProfileUnitOfWork(session), customer_id, types=types or [], limit=limit
        )


class TestSpendPerMonth:
    async def test_orders_and_revenue_are_summed_per_utc_month_oldest_first(
        self, sessions: SessionFactory
    ) -> None:
        customer = await register(sessions, "spender@example.com")
        orders = [
            ("o-1", "10.10", datetime(2026, 1, 5, 9, tzinfo=UTC)),
            ("o-2", "20.20", datetime(2026, 1, 31, 23, tzinfo=UTC)),
            ("o-3", "5.00", datetime(2026, 4, 1, 0, 30, tzinfo=PLUS_TWO)),  # March in UTC
            ("o-4", "100.00", datetime(2026, 4, 2, 8, tzinfo=UTC)),
        ]
        for order_id, revenue, at in orders:
            await deliver(sessions, order(customer, order_id, revenue, at))

        spend = (await overview(sessions, customer)).spend

        assert [(s.month, s.orders, s.revenue) for s in spend] == [
            ("2026-01", 2, Decimal("30.30")),
            ("2026-03", 1, Decimal("5.00")),
            ("2026-04", 1, Decimal("100.00")),
        ]

    async def test_only_the_customers_own_orders_count(self, sessions: SessionFactory) -> None:
        buyer = await register(sessions, "buyer@example.com")
        other = await register(sessions, "other@example.com")
        await deliver(sessions, order(other, "o-other", "99.00", DAY))

        assert (await overview(sessions, buyer)).spend == []
        assert len((await overview(sessions, other)).spend) == 1


class TestParts:
    async def test_the_customer_consents_metrics_and_timeline_come_together(
        self, sessions: SessionFactory
    ) -> None:
        customer = await register(sessions, "whole@example.com", first_name="Ada")
        await consent(sessions, customer, purpose="marketing", channel="email", granted=True)
        for n in range(3):
            await deliver(sessions, order(customer, f"o-{n}", "40.00", DAY + timedelta(days=n)))

        view = await overview(sessions, customer)

        assert (view.customer.id, view.customer.first_name) == (customer, "Ada")
        assert [(c.purpose, c.granted) for c in view.consents.consents] == [("marketing", True)]
        assert (view.metrics.orders, view.metrics.revenue) == (3, Decimal("120.00"))
        assert view.timeline.customer_id == customer
        assert [item.data["order_id"] for item in view.timeline.items] == ["o-2", "o-1", "o-0"]

    async def test_the_timeline_is_filtered_and_cut_like_its_own_route(
        self, sessions: SessionFactory
    ) -> None:
        customer = await register(sessions, "filtered@example.com")
        for n in range(3):
            await deliver(sessions, order(customer, f"o-{n}", "40.00", DAY + timedelta(days=n)))
        points = LoyaltyPointsEarned(
            customer_id=customer, occurred_at=DAY + timedelta(days=9), program="club", points=5
        )
        await deliver(sessions, points)

        everything = await overview(sessions, customer, limit=2)
        orders = await overview(sessions, customer, types=["order.completed"], limit=2)

        assert [item.type for item in everything.timeline.items][0] == points.TYPE
        assert [item.data["order_id"] for item in orders.timeline.items] == ["o-2", "o-1"]
        assert orders.timeline.next_cursor is not None

    async def test_an_unknown_customer_is_not_found(self, sessions: SessionFactory) -> None:
        with pytest.raises(CustomerNotFound):
            await overview(sessions, "nobody")
