"""The transactional outbox: events are written with the state change that caused them."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope, encode
from rapport_events.columns import ROW_ID
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.tracing import current_trace_headers


class OutboxMessage(SQLModel, table=True):
    """An event waiting for (or done with) publication; `id` orders the relay."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    event_id: str = Field(max_length=64, unique=True)
    event_type: str = Field(max_length=128)
    topic: str = Field(max_length=255)
    key: str = Field(max_length=255)
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: list[list[str]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    sent_at: datetime | None = Field(
        default=None,
        nullable=True,
        sa_type=DateTime(timezone=True),  # type: ignore[call-overload]
    )
    attempts: int = 0


def _pending_marker(session: AsyncSession) -> None:
    # Lets the relay wake at commit instead of waiting for its next poll.
    session.sync_session.info["rapport_outbox_pending"] = True


def add(
    session: AsyncSession,
    event: Event,
    *,
    source: str,
    topic: str = CUSTOMER_EVENTS_TOPIC,
    **envelope_fields: Any,
) -> Envelope:
    """Write `event` to the outbox on the caller's session, with the current trace context."""
    envelope = _envelope(event, source, **envelope_fields)
    session.add(OutboxMessage(**_row(envelope, topic)))
    _pending_marker(session)
    return envelope


async def add_all(
    session: AsyncSession,
    events: Sequence[Event],
    *,
    source: str,
    topic: str = CUSTOMER_EVENTS_TOPIC,
) -> list[Envelope]:
    """Write `events` to the outbox in order with one statement, as `add` would one by one.

    Rows the session holds are flushed first, so they keep their place before these
    (the row id orders the relay).
    """
    if not events:
        return []
    envelopes = [_envelope(event, source) for event in events]
    await session.flush()
    # A Core insert without RETURNING: the driver sends every row at once, where the
    # ORM would insert them one by one to read each generated id back.
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    await session.exec(insert(table), params=[_row(e, topic) for e in envelopes])
    _pending_marker(session)
    return envelopes


def _envelope(event: Event, source: str, **envelope_fields: Any) -> Envelope:
    trace_headers = current_trace_headers()
    return Envelope(
        data=event,
        source=source,
        traceparent=trace_headers.get("traceparent"),
        tracestate=trace_headers.get("tracestate"),
        **envelope_fields,
    )


def _row(envelope: Envelope, topic: str) -> dict[str, Any]:
    """The outbox columns of an envelope, all of them but the generated id."""
    message = encode(envelope)
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "topic": topic,
        "key": message.key.decode(),
        "value": message.value,
        "headers": [[name, value.decode()] for name, value in message.headers],
        "created_at": utcnow(),
        "sent_at": None,
        "attempts": 0,
    }
