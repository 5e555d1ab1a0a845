"""The access log: every view of a customer's personal data, by whom, on which page, when."""

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID

TZ = DateTime(timezone=True)

MAX_PAGE = 500


class AccessEntry(SQLModel, table=True):
    """One operator saw one customer's personal data on one page."""

    __tablename__ = "console_access_log"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    operator: str = Field(max_length=64, index=True)
    role: str = Field(max_length=32)
    customer_id: str = Field(max_length=64, index=True)
    page: str = Field(max_length=64)
    viewed_at: datetime = Field(default_factory=utcnow, sa_type=TZ, index=True)


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
