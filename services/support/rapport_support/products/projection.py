"""What support learns from completed orders: the products each customer owns, with the end
of their warranty. Runs of orders are read and written with one statement per table."""

import calendar
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import batch
from rapport_events.types import OrderCompleted
from rapport_support.customers.projection import after_bulk_writes
from rapport_support.customers.service import resolve_all
from rapport_support.products import store
from rapport_support.products.models import SupportProduct, model_key
from rapport_support.settings import Settings


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has no such day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _product_rows(
    settings: Settings, customer_id: str, event: OrderCompleted
) -> list[dict[str, Any]]:
    purchased_on = event.occurred_at.date()
    rows = []
    for line_no, item in enumerate(event.items):
        # Consumables (no model, no serial) are not something a customer calls support about.
        if not (item.product_model or item.serial_number):
            continue
        months = settings.warranty_months_for(item.product_model, item.category)
        rows.append(
            {
                "customer_id": customer_id,
                "order_id": event.order_id[:128],
                "line_no": line_no,
                "product_id": item.product_id,
                "product_model": item.product_model,
                "product_model_key": model_key(item.product_model),
                "name": item.name,
                "category": item.category,
                "serial_number": item.serial_number,
                "quantity": item.quantity,
                "purchased_at": event.occurred_at,
                "warranty_ends_on": add_months(purchased_on, months),
            }
        )
    return rows


@batch
async def record_orders(
    session: AsyncSession, settings: Settings, events: Sequence[OrderCompleted]
) -> None:
    """Remember the products of completed orders, with their warranty end."""
    resolved = await resolve_all(session, {event.customer_id for event in events})
    owners = [
        (customer_id, event)
        for event in events
        if (customer_id := resolved[event.customer_id]) is not None  # None: erased
    ]
    wanted = {(customer_id, event.order_id[:128]) for customer_id, event in owners}
    recorded = {
        (row["customer_id"], row["order_id"])
        for row in await store.recorded_orders(session, wanted)
    }
    rows: list[dict[str, Any]] = []
    for customer_id, event in owners:
        order = (customer_id, event.order_id[:128])
        if order in recorded:
            continue
        recorded.add(order)
        rows.extend(_product_rows(settings, customer_id, event))
    await store.upsert(session, SupportProduct, rows, ("customer_id", "order_id", "line_no"))
    after_bulk_writes(session)


async def record_order(session: AsyncSession, settings: Settings, event: OrderCompleted) -> None:
    """Remember the products of a completed order, with their warranty end."""
    await record_orders(session, settings, [event])
