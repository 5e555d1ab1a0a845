"""Every query of the customers domain: the people sales has learnt of, and the erased."""

from collections.abc import Collection

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_sales.customers.models import ErasedCustomer, SalesCustomer


async def get_customer(session: AsyncSession, customer_id: str) -> SalesCustomer | None:
    return await session.get(SalesCustomer, customer_id)


async def customers_among(session: AsyncSession, ids: Collection[str]) -> dict[str, SalesCustomer]:
    """The known customers of `ids`, by id."""
    if not ids:
        return {}
    rows = await session.exec(select(SalesCustomer).where(col(SalesCustomer.customer_id).in_(ids)))
    return {row.customer_id: row for row in rows.all()}


async def known_ids_among(session: AsyncSession, ids: Collection[str]) -> set[str]:
    """The ids of `ids` that are known customers."""
    rows = await session.exec(
        select(SalesCustomer.customer_id).where(col(SalesCustomer.customer_id).in_(ids))
    )
    return set(rows.all())


async def customer_ids_by_email(
    session: AsyncSession, addresses: Collection[str]
) -> dict[str, str]:
    """Known customers' ids by their (lower-cased) e-mail address."""
    if not addresses:
        return {}
    rows = await session.exec(
        select(SalesCustomer.email, SalesCustomer.customer_id).where(
            col(SalesCustomer.email).in_(list(addresses))
        )
    )
    return {email: customer_id for email, customer_id in rows.all() if email}


async def erased_among(session: AsyncSession, ids: Collection[str]) -> set[str]:
    """The ids of `ids` that were erased."""
    if not ids:
        return set()
    rows = await session.exec(
        select(ErasedCustomer.customer_id).where(col(ErasedCustomer.customer_id).in_(ids))
    )
    return set(rows.all())
