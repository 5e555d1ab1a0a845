"""What the log tells analytics: orders and loyalty points move the customers' metrics,
and each customer's new value is published."""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import value as customer_value
from rapport_events.base import utcnow
from rapport_events.consumer import batch
from rapport_events.types import (
    CustomerValueChanged,
    LoyaltyPointsEarned,
    OrderCompleted,
)
from rapport_profile.analytics import store
from rapport_profile.identity import service as identity_service
from rapport_profile.settings import Settings
from rapport_profile.shared import aware, utc
from rapport_profile.unit_of_work import ProfileUnitOfWork, SqlProfileUnitOfWork

# What orders decide in a customer's metrics (the loyalty balance is the points' own).
ORDER_METRICS = (
    "orders",
    "revenue",
    "profit",
    "first_order_at",
    "last_order_at",
    "lifetime_value",
    "tier",
    "updated_at",
)


async def refresh_metrics(session: AsyncSession, customer_id: str, topic: str) -> None:
    """Recompute a customer's order aggregates and value, and publish the value."""
    await refresh_metrics_of(session, [customer_id], topic)


async def refresh_metrics_of(
    session: AsyncSession, customer_ids: Collection[str], topic: str
) -> None:
    """`refresh_values` on the caller's session."""
    await refresh_values(SqlProfileUnitOfWork(session, topic), customer_ids)


async def refresh_values(uow: ProfileUnitOfWork, customer_ids: Collection[str]) -> None:
    """Recompute these customers' order aggregates and value (one grouped query, one
    multi-row upsert) and publish one customer.value.changed each (safe to repeat)."""
    totals = await uow.analytics.order_totals_of(customer_ids)
    now = utcnow()
    rows = [
        metrics_row(customer_id, totals.get(customer_id), now)
        for customer_id in sorted(customer_ids)
    ]
    await uow.analytics.upsert_metrics(rows, columns=ORDER_METRICS)
    await uow.outbox.publish([value_changed(row) for row in rows])


def metrics_row(customer_id: str, totals: tuple[Any, ...] | None, now: datetime) -> dict[str, Any]:
    """A customer's metrics row from their order totals (none when they have no order)."""
    count, revenue, profit, first, last = totals or (0, 0, 0, None, None)
    first_at, last_at = _parse_time(first), _parse_time(last)
    lifetime = customer_value.lifetime_value(Decimal(str(profit)), first_at, last_at)
    return {
        "customer_id": customer_id,
        "orders": int(count),
        "revenue": Decimal(str(revenue)).quantize(customer_value.CENT),
        "profit": Decimal(str(profit)).quantize(customer_value.CENT),
        "first_order_at": first_at,
        "last_order_at": last_at,
        "lifetime_value": lifetime,
        "tier": customer_value.tier(int(count), lifetime),
        "loyalty_points": 0,
        "updated_at": now,
    }


def value_changed(row: Mapping[str, Any]) -> CustomerValueChanged:
    """The customer.value.changed event of one metrics row."""
    orders, revenue = row["orders"], row["revenue"]
    return CustomerValueChanged(
        customer_id=row["customer_id"],
        orders=orders,
        revenue=revenue,
        average_order_value=customer_value.average_order_value(orders, revenue),
        profit=row["profit"],
        lifetime_value=row["lifetime_value"],
        tier=row["tier"],
        first_order_at=row["first_order_at"],
        last_order_at=row["last_order_at"],
        frequency_score=customer_value.frequency_score(orders),
        monetary_score=customer_value.monetary_score(orders, revenue),
    )


def _parse_time(value: Any) -> datetime | None:
    # Aggregates over SQLite come back as text.
    if value is None:
        return None
    if isinstance(value, str):
        return aware(datetime.fromisoformat(value))
    return aware(value)


@batch
async def record_orders(
    session: AsyncSession, events: Sequence[OrderCompleted], settings: Settings
) -> None:
    """Count each order in its customer's metrics (an order id counts once, the first time).

    The customers who gained an order get their value recomputed and published once each,
    however many of the run's orders were theirs.
    """
    owners = await identity_service.resolve_all(session, {event.customer_id for event in events})
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        owner = owners[event.customer_id]
        if owner is None or event.order_id in rows:
            continue
        rows[event.order_id] = {
            "order_id": event.order_id,
            "customer_id": owner,
            "subject_id": event.customer_id,
            "revenue": event.revenue,
            "cost": event.cost,
            "currency": event.currency,
            "items": sum(item.quantity for item in event.items),
            "occurred_at": utc(event.occurred_at),
        }
    if not rows:
        return
    # An order already in the table is skipped by the insert: only real gains refresh.
    gained = await store.add_orders(session, list(rows.values()))
    if gained:
        await refresh_metrics_of(session, gained, settings.kafka.topic)


@batch
async def record_points(session: AsyncSession, events: Sequence[LoyaltyPointsEarned]) -> None:
    """Keep the loyalty balance current (the reported balance wins when there is one)."""
    owners = await identity_service.resolve_all(session, {event.customer_id for event in events})
    known = {owner for owner in owners.values() if owner is not None}
    before = await store.loyalty_points_of(session, known)
    balances: dict[str, int] = {}
    for event in events:
        owner = owners[event.customer_id]
        if owner is None:
            continue
        current = balances.get(owner, before.get(owner, 0))
        balances[owner] = event.balance if event.balance is not None else current + event.points
    if not balances:
        return
    now = utcnow()
    rows = [
        {
            "customer_id": owner,
            "orders": 0,
            "revenue": Decimal(0),
            "profit": Decimal(0),
            "first_order_at": None,
            "last_order_at": None,
            "loyalty_points": points,
            "updated_at": now,
        }
        for owner, points in sorted(balances.items())
    ]
    await store.SqlAnalyticsStore(session).upsert_metrics(rows, columns=("loyalty_points",))
