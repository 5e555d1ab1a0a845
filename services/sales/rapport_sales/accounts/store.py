"""Every query of the accounts domain: accounts, and their contacts with who they are.

`AccountStore` is what the use cases ask of it; `SqlAccountStore` answers on the
transaction's session, and `rapport_sales.testing` has the in-memory fake."""

from collections.abc import Collection
from typing import Protocol

from sqlalchemy import delete, func, or_
from sqlmodel import col, select

from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.shared import SqlSalesStore


class AccountStore(Protocol):
    def add(self, row: SalesAccount | SalesContact) -> None: ...

    async def get_account(self, account_id: str) -> SalesAccount | None: ...

    async def list_accounts(
        self, owner: str | None, q: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SalesAccount], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        ...

    async def accounts_by_external_id(
        self, external_ids: Collection[str]
    ) -> dict[str | None, SalesAccount]: ...

    async def account_id_by_domain(self, domains: Collection[str]) -> str | None:
        """The oldest account with one of `domains`."""
        ...

    async def contacts_with_people(
        self, account_id: str
    ) -> list[tuple[SalesContact, SalesCustomer | None]]:
        """The account's contact links in the order they were made, each with its customer."""
        ...

    async def get_contact(self, account_id: str, customer_id: str) -> SalesContact | None: ...

    async def contact_ids_among(self, account_id: str, customer_ids: Collection[str]) -> set[str]:
        """The ids of `customer_ids` that are contacts of the account."""
        ...

    async def contact_links_of(self, customer_ids: Collection[str]) -> set[tuple[str, str]]:
        """(account id, customer id) of every contact link of `customer_ids`."""
        ...

    async def contacts_of(self, customer_id: str) -> list[SalesContact]:
        """The customer's links to accounts."""
        ...

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        """The duplicate's account links become the survivor's (one link per account)."""
        ...

    async def delete_contacts_of(self, customer_id: str) -> None:
        """The customer is no longer a contact of any account."""
        ...

    async def delete_contact(self, account_id: str, customer_id: str) -> int:
        """Remove the link; the number of rows removed (0 or 1)."""
        ...


class SqlAccountStore(SqlSalesStore):
    async def get_account(self, account_id: str) -> SalesAccount | None:
        return await self.session.get(SalesAccount, account_id)

    async def list_accounts(
        self, owner: str | None, q: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SalesAccount], str | None]:
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
        return await self.newest_first(query, SalesAccount, limit, cursor)

    async def accounts_by_external_id(
        self, external_ids: Collection[str]
    ) -> dict[str | None, SalesAccount]:
        result = await self.session.exec(
            select(SalesAccount).where(col(SalesAccount.external_id).in_(external_ids))
        )
        return {account.external_id: account for account in result.all()}

    async def account_id_by_domain(self, domains: Collection[str]) -> str | None:
        result = await self.session.exec(
            select(SalesAccount.id)
            .where(col(SalesAccount.domain).in_(domains))
            .order_by(col(SalesAccount.created_at))
            .limit(1)
        )
        return result.first()

    async def contacts_with_people(
        self, account_id: str
    ) -> list[tuple[SalesContact, SalesCustomer | None]]:
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
        return list((await self.session.exec(query)).all())

    async def get_contact(self, account_id: str, customer_id: str) -> SalesContact | None:
        return await self.session.get(SalesContact, (account_id, customer_id))

    async def contact_ids_among(self, account_id: str, customer_ids: Collection[str]) -> set[str]:
        result = await self.session.exec(
            select(SalesContact.customer_id).where(
                SalesContact.account_id == account_id,
                col(SalesContact.customer_id).in_(customer_ids),
            )
        )
        return set(result.all())

    async def contact_links_of(self, customer_ids: Collection[str]) -> set[tuple[str, str]]:
        result = await self.session.exec(
            select(SalesContact.account_id, SalesContact.customer_id).where(
                col(SalesContact.customer_id).in_(customer_ids)
            )
        )
        return set(result.all())

    async def contacts_of(self, customer_id: str) -> list[SalesContact]:
        result = await self.session.exec(
            select(SalesContact).where(SalesContact.customer_id == customer_id)
        )
        return list(result.all())

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        await self.move_links(SalesContact, duplicate, survivor)

    async def delete_contacts_of(self, customer_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            delete(SalesContact).where(col(SalesContact.customer_id) == customer_id)
        )

    async def delete_contact(self, account_id: str, customer_id: str) -> int:
        removed = await self.session.exec(  # type: ignore[call-overload]
            delete(SalesContact).where(
                col(SalesContact.account_id) == account_id,
                col(SalesContact.customer_id) == customer_id,
            )
        )
        return int(removed.rowcount)
