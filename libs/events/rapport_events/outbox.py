"""The transactional outbox: events are written with the state change that caused them.

An event is refused at write (`EventTooLarge`) when its Kafka message would be over
the broker's size limit, so it can never block the relay. A row the broker still
refuses for good is parked by the relay (`parked_at`, `park_reason`): it is no longer
pending, and `unpark` hands it back to the relay.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    DateTime,
    Index,
    LargeBinary,
    and_,
    delete,
    insert,
    or_,
    update,
)
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import shredding
from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope, KafkaMessage, context_headers, encode
from rapport_events.columns import ROW_ID
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC, KafkaSettings
from rapport_events.tracing import current_trace_headers

PARK_REASON_MAX_LENGTH = 1024


class OutboxMessage(SQLModel, table=True):
    """An event waiting for (or done with) publication; `id` orders the relay."""

    __tablename__ = "outbox"
    # Pending rows are `sent_at IS NULL AND parked_at IS NULL`, read in id order.
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "parked_at", "id"),)

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
    parked_at: datetime | None = Field(
        default=None,
        nullable=True,
        sa_type=DateTime(timezone=True),  # type: ignore[call-overload]
    )
    park_reason: str | None = Field(default=None, max_length=PARK_REASON_MAX_LENGTH)


class EventTooLarge(ValueError):
    """An event whose Kafka message would be over the broker's size limit; nothing is written."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(
            f"the {event_type} event this request makes would be {size} bytes on the log,"
            f" over the limit of {limit} bytes"
        )
        self.event_type = event_type
        self.size = size
        self.limit = limit


# Set from KafkaSettings when a service's event runtime is made (`configure`); one
# process serves one broker, so one limit.
_max_message_bytes: int = KafkaSettings.model_fields["max_message_bytes"].default
_keys_topic: str = shredding.KEYS_TOPIC
_seal: bool = True


def configure(settings: KafkaSettings) -> None:
    """Take the size limit of `add` and `add_all` from `settings`."""
    global _max_message_bytes, _keys_topic, _seal
    _max_message_bytes = settings.max_message_bytes
    _keys_topic = settings.keys_topic
    _seal = settings.seal_personal_fields
    shredding.configure(settings.key_encryption_keys)


def max_message_bytes() -> int:
    """The largest message, in bytes, `add` and `add_all` accept now."""
    return _max_message_bytes


def message_size(message: KafkaMessage) -> int:
    """Bytes of the record batch holding only `message`: what the producer and broker check."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        message.key, message.value, message.headers
    )
    return size


KEY_RECORD_TYPE = "rapport.customer.key"


def is_event() -> ColumnElement[bool]:
    """The rows of events, not of the data key records written with them."""
    return col(OutboxMessage.event_type) != KEY_RECORD_TYPE


def is_pending() -> ColumnElement[bool]:
    """The rows the relay has still to publish: neither sent nor parked."""
    return and_(col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.parked_at).is_(None))


async def parked(session: AsyncSession, limit: int = 100) -> list[OutboxMessage]:
    """The parked rows, oldest first."""
    result = await session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.parked_at).is_not(None))
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    return list(result.all())


async def unpark(session: AsyncSession, ids: Sequence[int]) -> int:
    """Give parked rows back to the relay (after the cause is fixed); returns how many.

    They go out after later events of the same key that were published meanwhile.
    """
    if not ids:
        return 0
    result = await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids), col(OutboxMessage.parked_at).is_not(None))
        .values(parked_at=None, park_reason=None)
    )
    _pending_marker(session)
    return int(result.rowcount)


def _pending_marker(session: AsyncSession) -> None:
    # Lets the relay wake at commit instead of waiting for its next poll.
    session.sync_session.info["rapport_outbox_pending"] = True


async def delete_sent(session: AsyncSession, keys: Sequence[str]) -> int:
    """Delete the sent rows of these keys (customer ids), as an erasure must; rows still
    pending go out first, so customer.erased keeps its place after them on the log."""
    if not keys:
        return 0
    ids = sorted(set(keys))
    # The records of their data keys too (keyed `<customer id>/<kid>`): with the KEK they
    # would unwrap keys the erasure destroys.
    data_keys = and_(
        col(OutboxMessage.event_type) == KEY_RECORD_TYPE,
        or_(*(col(OutboxMessage.key).startswith(f"{key}/", autoescape=True) for key in ids)),
    )
    result = await session.exec(
        delete(OutboxMessage).where(
            or_(col(OutboxMessage.key).in_(ids), data_keys),
            col(OutboxMessage.sent_at).is_not(None),
        )
    )
    return int(result.rowcount)


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
    for row in _rows(session, envelope, topic):
        session.add(OutboxMessage(**row))
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
    (the row id orders the relay). One event over the size limit refuses them all.
    """
    if not events:
        return []
    envelopes = [_envelope(event, source) for event in events]
    rows = [row for envelope in envelopes for row in _rows(session, envelope, topic)]
    await session.flush()
    # A Core insert without RETURNING: the driver sends every row at once, where the
    # ORM would insert them one by one to read each generated id back.
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    await session.exec(insert(table), params=rows)
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


def _rows(session: AsyncSession, envelope: Envelope, topic: str) -> list[dict[str, Any]]:
    """The outbox rows of an envelope: its event, its personal fields sealed, after the
    record of the customer's data key when this transaction mints one.

    Raises `EventTooLarge` for a message the broker would refuse, before anything is added.
    """
    personal = type(envelope.data).PERSONAL
    if not personal or not _seal:
        return [_row(envelope.type, topic, encode(envelope), envelope.id)]
    key, minted = _data_key(session, envelope.subject)
    message = _sealed(envelope, personal, key)
    rows = [_row(envelope.type, topic, message, envelope.id)]
    if minted and key is not None:
        rows.insert(0, _key_row(key.kid, shredding.keys().keks.wrap(key)))
    return rows


def _data_key(session: AsyncSession, customer_id: str) -> tuple[shredding.DataKey | None, bool]:
    """The key to seal this customer's event with, and whether it is minted here.

    None for an erased customer: their personal fields are dropped, not sealed."""
    cache = shredding.keys()
    if cache.is_erased(customer_id):
        return None, False
    minted: dict[str, shredding.DataKey] = session.sync_session.info.setdefault(
        shredding.MINTED, {}
    )
    key = minted.get(customer_id) or cache.current(customer_id)
    if key is not None:
        return key, False
    key = minted[customer_id] = shredding.new_data_key(customer_id)
    return key, True


def _sealed(
    envelope: Envelope, personal: frozenset[str], key: shredding.DataKey | None
) -> KafkaMessage:
    """The event's message with its personal fields sealed under `key` (dropped when None).

    Both parts are dumped by pydantic's serializer and joined as text: going through
    Python dicts and `json` cost as much again as the encryption itself."""
    event = envelope.data
    value = event.model_dump_json(exclude=set(personal))
    headers = context_headers(envelope)
    if key is not None:
        plaintext = event.model_dump_json(include=set(personal)).encode()
        sealed = shredding.seal_bytes(plaintext, key, envelope.id)
        value = f'{value[:-1]},"{shredding.SEALED_FIELD}":"{sealed}"}}'
        headers.append((shredding.DATA_KEY_HEADER, key.kid.encode()))
    return KafkaMessage(key=envelope.subject.encode(), value=value.encode(), headers=headers)


async def shred(session: AsyncSession, customer_id: str) -> list[str]:
    """Write the erasure of a customer's data keys: a tombstone for each key this process
    knows, and the `erased` marker every cache drops the customer's keys on. Sent rows
    of those keys' records leave the outbox (with the KEK they would unwrap the keys)."""
    minted = session.sync_session.info.get(shredding.MINTED, {})
    known = shredding.keys().kids_of(customer_id)
    if (key := minted.pop(customer_id, None)) is not None:
        known.append(key.kid)
    if known:
        await session.exec(delete(OutboxMessage).where(col(OutboxMessage.key).in_(known)))
    for kid in known:
        session.add(OutboxMessage(**_key_row(kid, b"")))
    session.add(OutboxMessage(**_key_row(customer_id, shredding.erased_marker(customer_id))))
    session.sync_session.info.setdefault(shredding.ERASED, set()).add(customer_id)
    _pending_marker(session)
    return known


def _key_row(record_key: str, value: bytes) -> dict[str, Any]:
    return _row(KEY_RECORD_TYPE, _keys_topic, KafkaMessage(record_key.encode(), value, []))


def _row(
    event_type: str, topic: str, message: KafkaMessage, event_id: str | None = None
) -> dict[str, Any]:
    """The outbox columns of a message, all of them but the generated id."""
    size = message_size(message)
    if size > _max_message_bytes:
        raise EventTooLarge(event_type, size, _max_message_bytes)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "topic": topic,
        "key": message.key.decode(),
        "value": message.value,
        "headers": [[name, value.decode()] for name, value in message.headers],
        "created_at": utcnow(),
        "sent_at": None,
        "attempts": 0,
        "parked_at": None,
        "park_reason": None,
    }
