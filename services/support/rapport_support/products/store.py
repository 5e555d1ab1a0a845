"""Every query of the products domain: what each customer owns."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_support.products.models import SupportProduct

# Set-based reads and writes for runs of events: the shared kit.
rows_where_pairs = bulk.rows_where
upsert = bulk.upsert


async def products_of(session: AsyncSession, customer_id: str) -> list[SupportProduct]:
    result = await session.exec(
        select(SupportProduct)
        .where(SupportProduct.customer_id == customer_id)
        .order_by(col(SupportProduct.purchased_at).desc(), col(SupportProduct.line_no))
    )
    return list(result.all())


async def recorded_orders(
    session: AsyncSession, orders: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Which of these (customer id, order id) pairs already have products."""
    rows = await rows_where_pairs(session, SupportProduct, ("customer_id", "order_id"), orders)
    return [{"customer_id": row["customer_id"], "order_id": row["order_id"]} for row in rows]


async def product_by_serial(
    session: AsyncSession, customer_id: str, serial_number: str
) -> SupportProduct | None:
    result = await session.exec(
        select(SupportProduct).where(
            SupportProduct.customer_id == customer_id,
            func.lower(SupportProduct.serial_number) == serial_number.lower(),
        )
    )
    return result.first()
