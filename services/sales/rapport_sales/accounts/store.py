"""Every query of the accounts domain: accounts, and their contacts with who they are."""

from collections.abc import Collection

from sqlalchemy import delete, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.shared import newest_first


async def get_account(session: AsyncSession, account_id: str) -> SalesAccount | None:
    return await session.get(SalesAccount, account_id)


async def list_accounts(
    session: AsyncSession, owner: str | None, q: str | None, limit: int, cursor: str | None
) -> tuple[list[SalesAccount], str | None]:
    """Newest first; the second value is the cursor of the next page (None on the last)."""
    query = select(SalesAccount)
    if owner:
        query = query.where(SalesAccount.owner == owner)
    if q:
        needle = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(SalesAccount.name).like(needle),
                func.lower(col(SalesAccount.domain)).like(needle),
            )
        )
    return await newest_first(session, query, SalesAccount, limit, cursor)


async def accounts_by_external_id(
    session: AsyncSession, external_ids: Collection[str]
) -> dict[str | None, SalesAccount]:
    result = await session.exec(
        select(SalesAccount).where(col(SalesAccount.external_id).in_(external_ids))
    )
    return {account.external_id: account for account in result.all()}


async def account_id_by_domain(session: AsyncSession, domains: Collection[str]) -> str | None:
    """The oldest account with one of `domains`."""
    result = await session.exec(
        select(SalesAccount.id)
        .where(col(SalesAccount.domain).in_(domains))
        .order_by(col(SalesAccount.created_at))
        .limit(1)
    )
    return result.first()


async def contacts_with_people(
    session: AsyncSession, account_id: str
) -> list[tuple[SalesContact, SalesCustomer | None]]:
    """The account's contact links in the order they were made, each with its customer."""
    query = (
        select(SalesContact, SalesCustomer)
        .join(
            SalesCustomer,
            col(SalesCustomer.customer_id) == col(SalesContact.customer_id),
            isouter=True,
        )
        .where(SalesContact.account_id == account_id)
        .order_by(col(SalesContact.linked_at), col(SalesContact.customer_id))
    )
    return list((await session.exec(query)).all())


async def get_contact(
    session: AsyncSession, account_id: str, customer_id: str
) -> SalesContact | None:
    return await session.get(SalesContact, (account_id, customer_id))


async def contact_ids_among(
    session: AsyncSession, account_id: str, customer_ids: Collection[str]
) -> set[str]:
    """The ids of `customer_ids` that are contacts of the account."""
    result = await session.exec(
        select(SalesContact.customer_id).where(
            SalesContact.account_id == account_id, col(SalesContact.customer_id).in_(customer_ids)
        )
    )
    return set(result.all())


async def contact_links_of(
    session: AsyncSession, customer_ids: Collection[str]
) -> set[tuple[str, str]]:
    """(account id, customer id) of every contact link of `customer_ids`."""
    result = await session.exec(
        select(SalesContact.account_id, SalesContact.customer_id).where(
            col(SalesContact.customer_id).in_(customer_ids)
        )
    )
    return set(result.all())


async def delete_contacts_of(session: AsyncSession, customer_id: str) -> None:
    """The customer is no longer a contact of any account."""
    await session.exec(  # type: ignore[call-overload]
        delete(SalesContact).where(col(SalesContact.customer_id) == customer_id)
    )


async def delete_contact(session: AsyncSession, account_id: str, customer_id: str) -> int:
    """Remove the link; the number of rows removed (0 or 1)."""
    removed = await session.exec(  # type: ignore[call-overload]
        delete(SalesContact).where(
            col(SalesContact.account_id) == account_id,
            col(SalesContact.customer_id) == customer_id,
        )
    )
    return int(removed.rowcount)
