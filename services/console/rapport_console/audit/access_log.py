"""The access log: every view of a customer's personal data, by whom, on which page, when."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_console.audit.models import AccessEntry

MAX_PAGE = 500


def record(session: AsyncSession, operator: str, role: str, customer_id: str, page: str) -> None:
    """Add an entry to the caller's transaction."""
    session.add(AccessEntry(operator=operator, role=role, customer_id=customer_id, page=page))


async def of_customer(
    session: AsyncSession, customer_id: str, limit: int = 100
) -> list[AccessEntry]:
    """Who viewed this customer, newest first."""
    query = (
        select(AccessEntry)
        .where(AccessEntry.customer_id == customer_id)
        .order_by(col(AccessEntry.viewed_at).desc(), col(AccessEntry.id).desc())
        .limit(min(limit, MAX_PAGE))
    )
    return list((await session.exec(query)).all())


async def recent(
    session: AsyncSession, operator: str | None = None, limit: int = 200
) -> list[AccessEntry]:
    """The newest entries, of one operator or of all."""
    query = select(AccessEntry)
    if operator:
        query = query.where(AccessEntry.operator == operator)
    query = query.order_by(col(AccessEntry.viewed_at).desc(), col(AccessEntry.id).desc())
    return list((await session.exec(query.limit(min(limit, MAX_PAGE)))).all())
