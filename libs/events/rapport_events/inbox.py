"""The inbox: a consumer's record of the events it has applied."""

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow


class InboxEntry(SQLModel, table=True):
    """One applied event; the primary key makes a second application impossible."""

    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=128)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


async def seen(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """True when this consumer already applied the event."""
    found = await session.exec(
        select(InboxEntry.event_id).where(
            InboxEntry.consumer == consumer, InboxEntry.event_id == event_id
        )
    )
    return found.first() is not None


async def claim(session: AsyncSession, consumer: str, event_id: str, event_type: str) -> bool:
    """Record the event in the caller's transaction; False when it was applied before.

    A concurrent claim of the same id fails the transaction on the primary key,
    which rolls back the handler's effects with it.
    """
    if await seen(session, consumer, event_id):
        return False
    session.add(InboxEntry(consumer=consumer, event_id=event_id, event_type=event_type))
    await session.flush()
    return True
