"""Every query of the customers domain: the people sales has learnt of, and the erased.

`CustomerStore` is what the use cases ask of it; `SqlCustomerStore` answers on the
transaction's session, and `rapport_sales.testing` has the in-memory fake."""

from collections.abc import Collection
from typing import Protocol

from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer


class CustomerStore(Protocol):
    def add(self, row: SalesCustomer | ErasedCustomer) -> None: ...

    async def delete(self, row: SalesCustomer) -> None: ...

    async def get_customer(self, customer_id: str) -> SalesCustomer | None: ...

    async def customers_among(self, ids: Collection[str]) -> dict[str, SalesCustomer]:
        """The known customers of `ids`, by id."""
        ...

    async def known_ids_among(self, ids: Collection[str]) -> set[str]:
        """The ids of `ids` that are known customers."""
        ...

    async def customer_ids_by_email(self, addresses: Collection[str]) -> dict[str, str]:
        """Known customers' ids by their (lower-cased) e-mail address."""
        ...

    async def tombstone_of(self, customer_id: str) -> ErasedCustomer | None:
        """The customer's erasure tombstone, if they were erased."""
        ...

    async def erased_among(self, ids: Collection[str]) -> set[str]:
        """The ids of `ids` that were erased."""
        ...


class SqlCustomerStore(SqlStore):
    async def get_customer(self, customer_id: str) -> SalesCustomer | None:
        return await self.session.get(SalesCustomer, customer_id)

    async def customers_among(self, ids: Collection[str]) -> dict[str, SalesCustomer]:
        if not ids:
            return {}
        rows = await self.session.exec(
            select(SalesCustomer).where(col(SalesCustomer.customer_id).in_(ids))
        )
        return {row.customer_id: row for row in rows.all()}

    async def known_ids_among(self, ids: Collection[str]) -> set[str]:
        rows = await self.session.exec(
            select(SalesCustomer.customer_id).where(col(SalesCustomer.customer_id).in_(ids))
        )
        return set(rows.all())

    async def customer_ids_by_email(self, addresses: Collection[str]) -> dict[str, str]:
        if not addresses:
            return {}
        rows = await self.session.exec(
            select(SalesCustomer.email, SalesCustomer.customer_id).where(
                col(SalesCustomer.email).in_(list(addresses))
            )
        )
        return {email: customer_id for email, customer_id in rows.all() if email}

    async def tombstone_of(self, customer_id: str) -> ErasedCustomer | None:
        return await self.session.get(ErasedCustomer, customer_id)

    async def erased_among(self, ids: Collection[str]) -> set[str]:
        if not ids:
            return set()
        rows = await self.session.exec(
            select(ErasedCustomer.customer_id).where(col(ErasedCustomer.customer_id).in_(ids))
        )
        return set(rows.all())
