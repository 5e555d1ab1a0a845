"""CloudEvents 1.0 in Kafka binary mode: `ce_*` headers, JSON data as the value.

Any Kafka client can read the log without our code; `decode` is how ours does.
"""

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from rapport_events import shredding
from rapport_events.base import Event, utcnow
from rapport_events.types import EVENT_MODELS, EVENT_TYPES

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TRACE_HEADERS = ("traceparent", "tracestate")

Headers = Sequence[tuple[str, bytes]]
# An upcaster turns the data of an old type into the data of the next version.
Upcaster = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
UPCASTERS: dict[str, Upcaster] = {}


class DecodeError(ValueError):
    """A message that is not a valid Rapport CloudEvent; it goes to the dead letters."""


def _type_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type")
    return getattr(value, "TYPE", None)


# Built from EVENT_MODELS so a new type needs no edit here; mypy cannot follow a dynamic Union.
AnyEvent: Any = Annotated[
    Union[tuple(Annotated[model, Tag(model.TYPE)] for model in EVENT_MODELS)],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(_type_tag),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)


@dataclass(frozen=True)
class Envelope:
    """One event with its CloudEvents context attributes."""

    data: Event
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def type(self) -> str:
        return self.data.TYPE

    @property
    def subject(self) -> str:
        return self.data.partition_key


@dataclass(frozen=True)
class KafkaMessage:
    """What goes on the wire: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode_data(event: Event) -> bytes:
    """The event's JSON data, without the type (it travels in `ce_type`)."""
    return event.model_dump_json().encode()


def context_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    """The CloudEvents binary-mode headers plus W3C trace context."""
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", envelope.id),
        ("ce_type", envelope.type),
        ("ce_source", envelope.source),
        ("ce_time", envelope.time.isoformat()),
        ("ce_subject", envelope.subject),
        ("content-type", CONTENT_TYPE),
    ]
    for name in TRACE_HEADERS:
        value = getattr(envelope, name)
        if value:
            headers.append((name, value))
    return [(name, value.encode()) for name, value in headers]


def encode(envelope: Envelope) -> KafkaMessage:
    """Envelope to a Kafka message in CloudEvents binary mode."""
    return KafkaMessage(
        key=envelope.subject.encode(),
        value=encode_data(envelope.data),
        headers=context_headers(envelope),
    )


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Kafka headers as a str dict; the last value of a repeated name wins."""
    return {name: (value or b"").decode("utf-8", "replace") for name, value in headers or ()}


def register_upcaster(old_type: str) -> Callable[[Upcaster], Upcaster]:
    """Decorate `fn(data) -> (next_type, next_data)` as the upcaster of a retired type.

    The old type's model is gone; its events stay on the log and are read as the
    next version. Upcasters chain, so v1 -> v2 -> v3 needs only one step each.
    """
    if old_type in EVENT_TYPES:
        raise ValueError(f"{old_type} has a current model; only a retired type is upcast")

    def register(upcaster: Upcaster) -> Upcaster:
        if old_type in UPCASTERS and UPCASTERS[old_type] is not upcaster:
            raise ValueError(f"an upcaster for {old_type} is already registered")
        UPCASTERS[old_type] = upcaster
        return upcaster

    return register


def _same_data(next_type: str) -> Upcaster:
    def upcaster(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return next_type, data

    return upcaster


# v1 -> v2 of the types whose personal fields became optional for crypto-shredding:
# a v1 event always holds them, so it reads as v2 unchanged.
for _retired in (
    "rapport.customer.registered",
    "rapport.campaign.message.clicked",
    "rapport.ticket.opened",
    "rapport.ticket.resolved",
    "rapport.social.mention.received",
    "rapport.social.reply.sent",
):
    register_upcaster(f"{_retired}.v1")(_same_data(f"{_retired}.v2"))


def upcast(event_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Apply upcasters until the type is one we have a model for."""
    seen = set()
    while event_type in UPCASTERS and event_type not in seen:
        seen.add(event_type)
        event_type, data = UPCASTERS[event_type](data)
    return event_type, data


def decode_event(event_type: str, data: dict[str, Any]) -> Event:
    """Validate data of a (possibly old) type into the current model."""
    try:
        event_type, data = upcast(event_type, data)
    except Exception as error:  # old data the upcaster cannot read is a bad message, not a crash
        raise DecodeError(f"cannot upcast {event_type}: {error!r}") from error
    try:
        return EVENT_ADAPTER.validate_python({**data, "type": event_type})
    except (ValidationError, RecursionError) as error:
        raise DecodeError(f"invalid {event_type}: {error}") from error


# Bounds checked before anything parses the value: a record nested 100,000 deep would
# otherwise raise RecursionError deep inside the parser or the model's validation.
MAX_VALUE_BYTES = 4 * 1024 * 1024
MAX_NESTING_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_ALL_BUT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(value: bytes) -> int:
    """How deep JSON arrays and objects nest in `value`, brackets inside strings aside."""
    brackets = _JSON_STRING.sub(b"", value).translate(None, _ALL_BUT_BRACKETS)
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def check_shape(value: bytes) -> None:
    """Raise DecodeError when a value is too large or nests too deep to parse safely."""
    if len(value) > MAX_VALUE_BYTES:
        raise DecodeError(f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
    if value.count(b"[") + value.count(b"{") <= MAX_NESTING_DEPTH:
        return  # too few brackets to nest too deep: no need to scan
    depth = nesting_depth(value)
    if depth > MAX_NESTING_DEPTH:
        raise DecodeError(f"value nests {depth} deep, over {MAX_NESTING_DEPTH}")


def _unsealed(data: dict[str, Any], attributes: Mapping[str, str]) -> dict[str, Any]:
    """The data with its personal fields opened, or without them once the key is shredded.

    Raises DataKeyNotReady (not a DecodeError: the event is fine, the key is on its way)."""
    kid = attributes.get(shredding.DATA_KEY_HEADER)
    if not kid:
        raise DecodeError(f"sealed data without a {shredding.DATA_KEY_HEADER} header")
    try:
        return shredding.unseal(data, shredding.keys().lookup(kid), attributes["ce_id"])
    except shredding.ShreddingError as error:
        raise DecodeError(str(error)) from error


def decode(
    value: bytes | None, headers: Headers | None, attributes: Mapping[str, str] | None = None
) -> Envelope:
    """Kafka value and headers to an Envelope; raises DecodeError on anything malformed.

    `attributes` is `header_map(headers)` when the caller has it already.
    """
    attributes = header_map(headers) if attributes is None else attributes
    missing = [n for n in ("ce_id", "ce_type", "ce_source") if not attributes.get(n)]
    if missing:
        raise DecodeError(f"missing CloudEvents headers: {', '.join(missing)}")
    if attributes.get("ce_specversion") != SPEC_VERSION:
        raise DecodeError(f"unsupported ce_specversion {attributes.get('ce_specversion')!r}")
    check_shape(value or b"")
    try:
        data = json.loads(value or b"null")
    except (ValueError, RecursionError) as error:
        raise DecodeError(f"value is not JSON: {error!r}") from error
    if not isinstance(data, dict):
        raise DecodeError("value must be a JSON object")
    if shredding.SEALED_FIELD in data:
        data = _unsealed(data, attributes)
    try:
        time = (
            datetime.fromisoformat(attributes["ce_time"]) if attributes.get("ce_time") else utcnow()
        )
    except ValueError as error:
        raise DecodeError(f"bad ce_time: {error}") from error
    return Envelope(
        data=decode_event(attributes["ce_type"], data),
        source=attributes["ce_source"],
        id=attributes["ce_id"],
        time=time,
        traceparent=attributes.get("traceparent"),
        tracestate=attributes.get("tracestate"),
    )
