"""Every query of the customers domain: known customers and the tombstones of erased ones."""

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_partner_share.customers.models import ErasedCustomer, KnownCustomer


async def get_known_customer(session: AsyncSession, customer_id: str) -> KnownCustomer | None:
    return await session.get(KnownCustomer, customer_id)


async def delete_known_customer(session: AsyncSession, customer_id: str) -> None:
    await session.exec(delete(KnownCustomer).where(col(KnownCustomer.customer_id) == customer_id))


async def get_tombstone(session: AsyncSession, customer_id: str) -> ErasedCustomer | None:
    return await session.get(ErasedCustomer, customer_id)


def add_tombstone(session: AsyncSession, tombstone: ErasedCustomer) -> None:
    session.add(tombstone)
