"""Every query of the activities domain: activities, the contacts they are about, and
the documents among them.

`ActivityStore` is what the use cases ask of it; `SqlActivityStore` answers on the
transaction's session, and `rapport_sales.testing` has the in-memory fake."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Text, cast, delete, or_
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from rapport_sales.accounts.models import SalesContact
from rapport_sales.activities.models import SalesActivity, SalesActivityContact, SalesDocument
from rapport_sales.shared import SqlSalesStore


@dataclass(frozen=True)
class ActivityFilter:
    account_id: str | None = None
    customer_id: str | None = None
    kind: str | None = None


class ActivityStore(Protocol):
    def add(self, row: SalesActivity | SalesActivityContact | SalesDocument) -> None: ...

    async def delete(self, row: SalesActivity | SalesDocument) -> None: ...

    async def get_activity(self, activity_id: str) -> SalesActivity | None: ...

    async def get_document(self, document_id: str) -> SalesDocument | None: ...

    async def overdue_tasks(
        self, owner: str | None, now: datetime, limit: int
    ) -> list[SalesActivity]:
        """Tasks not done and due before `now`, by due time, of `owner` (or of everyone)."""
        ...

    async def contact_links_of(self, activity_ids: Collection[str]) -> list[SalesActivityContact]:
        """The contact links of the activities."""
        ...

    async def list_activities(
        self, where: ActivityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesActivity], str | None]:
        """Newest first; an account's are its own and its contacts'. The second value is the
        cursor of the next page (None on the last)."""
        ...

    async def activities_about(
        self, customer_ids: Collection[str], emails: Collection[str]
    ) -> list[SalesActivity]:
        """The activities linked to one of `customer_ids` or naming one of `emails`."""
        ...

    async def documents_of_people_alone(self, customer_ids: Collection[str]) -> list[SalesActivity]:
        """The document activities about one of `customer_ids` and no account."""
        ...

    async def linked_to(self, customer_id: str) -> list[SalesActivity]:
        """The activities linked to the customer."""
        ...

    async def documents_linked_to(self, customer_id: str) -> list[SalesDocument]:
        """The documents of the activities linked to the customer."""
        ...

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        """The duplicate's activity links become the survivor's (one per activity)."""
        ...

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        """`customer_ids` are no longer linked to any activity."""
        ...


def _linked_to(customer_ids: Collection[str] | SelectOfScalar[str]) -> SelectOfScalar[str]:
    """The ids of the activities about one of `customer_ids`."""
    return select(SalesActivityContact.activity_id).where(
        col(SalesActivityContact.customer_id).in_(customer_ids)
    )


class SqlActivityStore(SqlSalesStore):
    async def get_activity(self, activity_id: str) -> SalesActivity | None:
        return await self.session.get(SalesActivity, activity_id)

    async def get_document(self, document_id: str) -> SalesDocument | None:
        return await self.session.get(SalesDocument, document_id)

    async def overdue_tasks(
        self, owner: str | None, now: datetime, limit: int
    ) -> list[SalesActivity]:
        query = select(SalesActivity).where(
            SalesActivity.kind == "task",
            col(SalesActivity.done_at).is_(None),
            col(SalesActivity.due_at) < now,
        )
        if owner is not None:
            query = query.where(SalesActivity.owner == owner)
        result = await self.session.exec(
            query.order_by(col(SalesActivity.due_at), col(SalesActivity.id)).limit(limit)
        )
        return list(result.all())

    async def contact_links_of(self, activity_ids: Collection[str]) -> list[SalesActivityContact]:
        result = await self.session.exec(
            select(SalesActivityContact).where(
                col(SalesActivityContact.activity_id).in_(activity_ids)
            )
        )
        return list(result.all())

    async def list_activities(
        self, where: ActivityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesActivity], str | None]:
        account_id, customer_id, kind = where.account_id, where.customer_id, where.kind
        query = select(SalesActivity)
        if account_id is not None:
            contacts = select(SalesContact.customer_id).where(SalesContact.account_id == account_id)
            query = query.where(
                or_(
                    col(SalesActivity.account_id) == account_id,
                    col(SalesActivity.id).in_(_linked_to(contacts)),
                )
            )
        if customer_id is not None:
            query = query.where(
                col(SalesActivity.id).in_(
                    select(SalesActivityContact.activity_id).where(
                        SalesActivityContact.customer_id == customer_id
                    )
                )
            )
        if kind is not None:
            query = query.where(SalesActivity.kind == kind)
        return await self.newest_first(query, SalesActivity, limit, cursor)

    async def activities_about(
        self, customer_ids: Collection[str], emails: Collection[str]
    ) -> list[SalesActivity]:
        # Addresses live in a JSON list; a LIKE on its text narrows the rows the caller edits.
        mentions = [cast(SalesActivity.addresses, Text).like(f'%"{email}"%') for email in emails]
        result = await self.session.exec(
            select(SalesActivity).where(
                or_(col(SalesActivity.id).in_(_linked_to(customer_ids)), *mentions)
            )
        )
        return list(result.all())

    async def documents_of_people_alone(self, customer_ids: Collection[str]) -> list[SalesActivity]:
        result = await self.session.exec(
            select(SalesActivity).where(
                SalesActivity.kind == "document",
                col(SalesActivity.account_id).is_(None),
                col(SalesActivity.id).in_(_linked_to(customer_ids)),
            )
        )
        return list(result.all())

    async def linked_to(self, customer_id: str) -> list[SalesActivity]:
        query = select(SalesActivity).where(col(SalesActivity.id).in_(_linked_to([customer_id])))
        return list((await self.session.exec(query)).all())

    async def documents_linked_to(self, customer_id: str) -> list[SalesDocument]:
        query = select(SalesDocument).where(col(SalesDocument.id).in_(_linked_to([customer_id])))
        return list((await self.session.exec(query)).all())

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        await self.move_links(SalesActivityContact, duplicate, survivor)

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            delete(SalesActivityContact).where(
                col(SalesActivityContact.customer_id).in_(customer_ids)
            )
        )
