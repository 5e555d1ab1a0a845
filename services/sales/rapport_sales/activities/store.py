"""Every query of the activities domain: activities, the contacts they are about, and
the documents among them."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, delete, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from rapport_sales.accounts.models import SalesContact
from rapport_sales.activities.models import SalesActivity, SalesActivityContact, SalesDocument
from rapport_sales.shared import newest_first


async def get_activity(session: AsyncSession, activity_id: str) -> SalesActivity | None:
    return await session.get(SalesActivity, activity_id)


async def get_document(session: AsyncSession, document_id: str) -> SalesDocument | None:
    return await session.get(SalesDocument, document_id)


async def overdue_tasks(
    session: AsyncSession, owner: str | None, now: datetime, limit: int
) -> list[SalesActivity]:
    """Tasks not done and due before `now`, by due time, of `owner` (or of everyone)."""
    query = select(SalesActivity).where(
        SalesActivity.kind == "task",
        col(SalesActivity.done_at).is_(None),
        col(SalesActivity.due_at) < now,
    )
    if owner is not None:
        query = query.where(SalesActivity.owner == owner)
    result = await session.exec(
        query.order_by(col(SalesActivity.due_at), col(SalesActivity.id)).limit(limit)
    )
    return list(result.all())


async def contact_links_of(
    session: AsyncSession, activity_ids: Collection[str]
) -> list[SalesActivityContact]:
    """The contact links of the activities."""
    result = await session.exec(
        select(SalesActivityContact).where(col(SalesActivityContact.activity_id).in_(activity_ids))
    )
    return list(result.all())


def _linked_to(customer_ids: Collection[str] | SelectOfScalar[str]) -> SelectOfScalar[str]:
    """The ids of the activities about one of `customer_ids`."""
    return select(SalesActivityContact.activity_id).where(
        col(SalesActivityContact.customer_id).in_(customer_ids)
    )


@dataclass(frozen=True)
class ActivityFilter:
    account_id: str | None = None
    customer_id: str | None = None
    kind: str | None = None


async def list_activities(
    session: AsyncSession, where: ActivityFilter, limit: int, cursor: str | None
) -> tuple[list[SalesActivity], str | None]:
    """Newest first; an account's are its own and its contacts'. The second value is the
    cursor of the next page (None on the last)."""
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
    return await newest_first(session, query, SalesActivity, limit, cursor)


async def activities_about(
    session: AsyncSession, customer_ids: Collection[str], emails: Collection[str]
) -> list[SalesActivity]:
    """The activities linked to one of `customer_ids` or naming one of `emails`."""
    # Addresses live in a JSON list; a LIKE on its text narrows the rows the caller edits.
    mentions = [cast(SalesActivity.addresses, Text).like(f'%"{email}"%') for email in emails]
    result = await session.exec(
        select(SalesActivity).where(
            or_(col(SalesActivity.id).in_(_linked_to(customer_ids)), *mentions)
        )
    )
    return list(result.all())


async def documents_of_people_alone(
    session: AsyncSession, customer_ids: Collection[str]
) -> list[SalesActivity]:
    """The document activities about one of `customer_ids` and no account."""
    result = await session.exec(
        select(SalesActivity).where(
            SalesActivity.kind == "document",
            col(SalesActivity.account_id).is_(None),
            col(SalesActivity.id).in_(_linked_to(customer_ids)),
        )
    )
    return list(result.all())


async def unlink_customers(session: AsyncSession, customer_ids: Collection[str]) -> None:
    """`customer_ids` are no longer linked to any activity."""
    await session.exec(  # type: ignore[call-overload]
        delete(SalesActivityContact).where(col(SalesActivityContact.customer_id).in_(customer_ids))
    )
