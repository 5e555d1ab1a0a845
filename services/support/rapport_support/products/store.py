"""Every query of the products domain: what each customer owns.

What the tickets, the mentions and the merge, erasure and export ask of it is a
`ProductLookup` (`SqlProductLookup` here, on `SupportUnitOfWork.products`; a fake in
`rapport_support.testing`); the projection reads and writes its batches with the shared
set-based kit on the consumer's session.
"""

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_events.unit_of_work import SqlStore
from rapport_support.products.models import SupportProduct

# Set-based reads and writes for runs of events: the shared kit.
rows_where_pairs = bulk.rows_where
upsert = bulk.upsert


async def recorded_orders(
    session: AsyncSession, orders: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Which of these (customer id, order id) pairs already have products."""
    rows = await rows_where_pairs(session, SupportProduct, ("customer_id", "order_id"), orders)
    return [{"customer_id": row["customer_id"], "order_id": row["order_id"]} for row in rows]


class ProductLookup(Protocol):
    """What the tickets, the mentions and the merge, erasure and export ask of the products
    domain."""

    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None: ...

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        """What the customer owns, newest purchase first."""
        ...

    async def move_products(self, from_id: str, to_id: str) -> None:
        """What `from_id` owns becomes `to_id`'s."""
        ...

    async def forget_products(self, customer_id: str) -> None:
        """Delete what the customer owns."""
        ...


class SqlProductLookup(SqlStore):
    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None:
        result = await self.session.exec(
            select(SupportProduct).where(
                SupportProduct.customer_id == customer_id,
                func.lower(SupportProduct.serial_number) == serial_number.lower(),
            )
        )
        return result.first()

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        result = await self.session.exec(
            select(SupportProduct)
            .where(SupportProduct.customer_id == customer_id)
            .order_by(col(SupportProduct.purchased_at).desc(), col(SupportProduct.line_no))
        )
        return list(result.all())

    async def move_products(self, from_id: str, to_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            update(SupportProduct)
            .where(col(SupportProduct.customer_id) == from_id)
            .values(customer_id=to_id)
        )

    async def forget_products(self, customer_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            delete(SupportProduct).where(col(SupportProduct.customer_id) == customer_id)
        )
