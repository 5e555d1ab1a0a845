"""Every query of the customers domain: known customers and the tombstones of erased ones.

Partner-share keeps no merge links (a merge moves the duplicate's consents to the survivor
and forgets its id), so the one question it asks of an id is whether it was erased.

The merge, the erasure and the export ask theirs of a `CustomerStore` (`SqlCustomerStore`
here, a fake in `rapport_partner_share.testing`), and so does the customer route. Which ids of
a batch were erased (`erased_among`) stays a function of the session, for the projections.
"""

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.customers.models import ErasedCustomer, KnownCustomer


async def erased_among(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    """Which of these ids were erased."""
    rows = await bulk.rows_where(session, ErasedCustomer, ("customer_id",), customer_ids)
    return {row["customer_id"] for row in rows}


class CustomerStore(Protocol):
    """What the merge, the erasure and the export ask of the customers domain."""

    def add(self, row: ErasedCustomer) -> None: ...

    async def get_known_customer(self, customer_id: str) -> KnownCustomer | None: ...

    async def delete_known_customer(self, customer_id: str) -> None: ...

    async def get_tombstone(self, customer_id: str) -> ErasedCustomer | None: ...

    async def is_erased(self, customer_id: str) -> bool: ...


class SqlCustomerStore(SqlStore):
    async def get_known_customer(self, customer_id: str) -> KnownCustomer | None:
        return await self.session.get(KnownCustomer, customer_id)

    async def delete_known_customer(self, customer_id: str) -> None:
        await self.session.exec(
            delete(KnownCustomer).where(col(KnownCustomer.customer_id) == customer_id)
        )

    async def get_tombstone(self, customer_id: str) -> ErasedCustomer | None:
        return await self.session.get(ErasedCustomer, customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        return await self.get_tombstone(customer_id) is not None
