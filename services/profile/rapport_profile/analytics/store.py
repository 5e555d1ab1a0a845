"""Every query on orders, metrics and forecast models.

`AnalyticsStore` is what the use cases ask of it (the merge's metrics and the reads);
`SqlAnalyticsStore` answers on the transaction's session (the loyalty projection builds it
on its own for `upsert_metrics`), and `rapport_profile.testing` has the in-memory fake.
The projections' order inserts and loyalty lookup, and the forecast worker's model rows,
stay functions of the session: no use case asks them of a store."""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    delete,
    func,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlStore
from rapport_profile.analytics.models import CustomerMetrics, ForecastModel, Order
from rapport_profile.customers.models import Customer
from rapport_profile.shared import _chunks, _insert, _send_rows, _upsert

ORDERS = Order.__table__  # type: ignore[attr-defined]


METRICS = CustomerMetrics.__table__  # type: ignore[attr-defined]


class AnalyticsStore(Protocol):
    async def order_totals_of(self, customer_ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
        """(count, revenue, profit, first, last) of each of these customers that has orders."""
        ...

    async def upsert_metrics(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        """Insert whole metrics rows; where a customer has one, set only `columns` from them."""
        ...

    async def delete_metrics(self, customer_id: str) -> None: ...

    async def get_metrics(self, customer_id: str) -> CustomerMetrics | None: ...

    async def spend_by_month(self, customer_id: str) -> list[tuple[str, int, Any]]:
        """(month `YYYY-MM`, orders, revenue) of each calendar month (UTC) the customer
        ordered in, oldest first."""
        ...

    async def metrics_of_active(self) -> list[CustomerMetrics]:
        """The metrics rows of the active customers."""
        ...

    async def orders_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[tuple[Order, Customer | None]]:
        """Orders in [start, end) with their customer row, whatever its status (None when
        the order's id has none)."""
        ...

    async def customers_created_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[Customer]:
        """Customers created in [start, end), active or surviving a merge (not merged away)."""
        ...


class SqlAnalyticsStore(SqlStore):
    async def order_totals_of(self, customer_ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
        totals: dict[str, tuple[Any, ...]] = {}
        for chunk in _chunks(customer_ids):
            query = (
                _totals()
                .add_columns(col(Order.customer_id))
                .where(col(Order.customer_id).in_(chunk))
                .group_by(col(Order.customer_id))
            )
            for *values, customer_id in await self.session.exec(query):
                totals[customer_id] = tuple(values)
        return totals

    async def upsert_metrics(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
    ) -> None:
        await _upsert(self.session, METRICS, rows, columns)

    async def delete_metrics(self, customer_id: str) -> None:
        await self.session.exec(
            delete(CustomerMetrics).where(col(CustomerMetrics.customer_id) == customer_id)
        )

    async def get_metrics(self, customer_id: str) -> CustomerMetrics | None:
        return await self.session.get(CustomerMetrics, customer_id)

    async def spend_by_month(self, customer_id: str) -> list[tuple[str, int, Any]]:
        # Summed by the database: a customer may have thousands of orders.
        month = _utc_month(self.session.get_bind().dialect.name, col(Order.occurred_at))
        query = (
            select(month, func.count(), func.sum(Order.revenue))  # type: ignore[call-overload]
            .where(Order.customer_id == customer_id)
            .group_by(month)
            .order_by(month)
        )
        return [(m, orders, revenue) for m, orders, revenue in await self.session.exec(query)]

    async def metrics_of_active(self) -> list[CustomerMetrics]:
        active = select(Customer.id).where(Customer.status == "active")
        result = await self.session.exec(
            select(CustomerMetrics).where(col(CustomerMetrics.customer_id).in_(active))
        )
        return list(result.all())

    async def orders_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[tuple[Order, Customer | None]]:
        query = select(Order, Customer).join(
            Customer, col(Customer.id) == col(Order.customer_id), isouter=True
        )
        if start is not None:
            query = query.where(col(Order.occurred_at) >= start)
        if end is not None:
            query = query.where(col(Order.occurred_at) < end)
        result = await self.session.exec(query)
        return [(row[0], row[1]) for row in result.all()]

    async def customers_created_between(
        self, start: datetime | None, end: datetime | None
    ) -> list[Customer]:
        query = select(Customer).where(col(Customer.status).in_(("active", "merged")))
        # A merged customer was not a new one: only count the survivor.
        query = query.where(col(Customer.merged_into).is_(None))
        if start is not None:
            query = query.where(col(Customer.created_at) >= start)
        if end is not None:
            query = query.where(col(Customer.created_at) < end)
        result = await self.session.exec(query)
        return list(result.all())


async def add_orders(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the orders not counted yet; returns the customers who got one."""
    statement = _insert(session, ORDERS).on_conflict_do_nothing()
    inserted = await _send_rows(session, statement.returning(ORDERS.c.customer_id), rows)
    return {row[0] for row in inserted}


def _totals() -> Any:
    cost = func.coalesce(Order.cost, 0)
    return select(  # type: ignore[call-overload]
        func.count(),
        func.coalesce(func.sum(Order.revenue), 0),
        func.coalesce(func.sum(Order.revenue - cost), 0),
        func.min(Order.occurred_at),
        func.max(Order.occurred_at),
    )


def _utc_month(dialect: str, column: Any) -> ColumnElement[str]:
    """The UTC calendar month of a timestamp column as `YYYY-MM`, in the database's dialect."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    # SQLite keeps every timestamp as UTC text (`rapport_profile.shared.utc`).
    return func.strftime("%Y-%m", column)


async def loyalty_points_of(session: AsyncSession, customer_ids: Collection[str]) -> dict[str, int]:
    """The loyalty balance of each of these customers that has a metrics row."""
    points: dict[str, int] = {}
    for chunk in _chunks(customer_ids):
        query = select(col(CustomerMetrics.customer_id), col(CustomerMetrics.loyalty_points))
        for customer_id, balance in await session.exec(
            query.where(col(CustomerMetrics.customer_id).in_(chunk))
        ):
            points[customer_id] = balance
    return points


FORECAST_MODELS = ForecastModel.__table__  # type: ignore[attr-defined]


async def forecast_models(session: AsyncSession, limit: int) -> list[ForecastModel]:
    """The stored forecast models, the most recently fitted first."""
    result = await session.exec(
        select(ForecastModel).order_by(col(ForecastModel.fitted_at).desc()).limit(limit)
    )
    return list(result.all())


async def save_forecast_model(
    session: AsyncSession, key: str, reply: dict[str, Any], fitted_at: datetime
) -> None:
    """Keep the latest fitted model of `key`."""
    row = {"key": key, "reply": reply, "fitted_at": fitted_at}
    await _upsert(session, FORECAST_MODELS, [row], ["reply", "fitted_at"])
