"""What support's domains share: UTC timestamps and row ids, the base of reply schemas, a
page of a listing, and writing events to the outbox."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from sqlalchemy import DateTime
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import Event
from rapport_support.settings import Settings

TZ = DateTime(timezone=True)


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(aware)]


T = TypeVar("T")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def clip(value: str | None, length: int) -> str | None:
    # Any producer may write to the log; an over-long value must not dead-letter the event.
    return value[:length] if value is not None else None


def publish(session: AsyncSession, settings: Settings, event: Event) -> None:
    """Write `event` to the outbox, in the caller's transaction."""
    source = f"/services/{settings.service_name}"
    outbox.add(session, event, source=source, topic=settings.kafka.topic)
