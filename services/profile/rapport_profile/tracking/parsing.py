"""Reading tracking calls: bodies, their size and encoding, and Segment's message schema."""

import json
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rapport_events import errors
from rapport_events.limits import Checked, FreeJson
from rapport_profile.shared import aware
from rapport_profile.tracking import traits as tracking_traits

MAX_CALL_BYTES = 32 * 1024


MAX_BATCH_BYTES = 500 * 1024


ANONYMOUS, USER = "anonymous_id", "user_id"


# Times a tracking call may carry; a wider range would overflow the skew correction.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class BadTrackingCall(errors.InvalidRequest):
    """A tracking call that cannot be accepted (400, as Segment answers)."""

    status_code = 400
    code = "bad_request"

    def details(self) -> dict[str, Any]:
        # Segment's shape, `{"code", "message"}`, besides ours.
        return {"code": self.code}


Id = str | int


class Message(Checked):
    """One Segment message; unknown fields are allowed, as Segment allows them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: Literal["identify", "track", "page", "screen", "alias", "group"] | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: str | None = Field(default=None, max_length=128)
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    context: FreeJson = {}
    properties: FreeJson = {}
    traits: FreeJson = {}
    event: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    previousId: Id | None = None
    groupId: Id | None = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]]
    sentAt: datetime | None = None
    context: FreeJson = {}


async def read_body(chunks: AsyncIterator[bytes], encoding: str | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (before or after gunzip)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BadTrackingCall(f"request body is larger than {limit // 1024} KB")
    if (encoding or "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(bytes(body), limit + 1)
        except zlib.error as error:
            raise BadTrackingCall("the gzip body is corrupt") from error
        if len(raw) > limit or inflater.unconsumed_tail:
            raise BadTrackingCall(f"request body is larger than {limit // 1024} KB")
        return raw
    return bytes(body)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadTrackingCall(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise BadTrackingCall("the body is nested too deep") from error
    if not isinstance(value, dict):
        raise BadTrackingCall("the body must be a JSON object")
    return value


def parse_messages(payload: dict[str, Any], kind: str | None) -> list[Message]:
    """The messages of one call (`kind` set) or of a batch (`kind` None)."""
    if kind is not None:
        raw_messages, shared_sent_at, shared_context = [payload], None, {}
    else:
        try:
            batch = Batch.model_validate(payload)
        except ValidationError as error:
            raise BadTrackingCall(f"a batch needs a `batch` list of messages: {error}") from error
        raw_messages, shared_sent_at, shared_context = batch.batch, batch.sentAt, batch.context
    messages = []
    for index, raw in enumerate(raw_messages):
        where = f"batch[{index}]" if kind is None else "message"
        try:
            # Validation bounds the nesting first, so measuring the message is safe.
            message = Message.model_validate(raw)
        except ValidationError as error:
            raise BadTrackingCall(f"{where} is malformed: {_first_error(error)}") from error
        if len(json.dumps(raw, default=str).encode()) > MAX_CALL_BYTES:
            raise BadTrackingCall(f"{where} is larger than 32 KB")
        if kind is not None:
            message.type = kind  # type: ignore[assignment]
        if message.type is None:
            raise BadTrackingCall(f"{where} has no type")
        if message.userId in (None, "") and message.anonymousId in (None, ""):
            raise BadTrackingCall(f"{where} needs a userId or an anonymousId")
        for name in ("userId", "anonymousId", "previousId"):
            value = getattr(message, name)
            if value is not None and len(str(value)) > 255:
                raise BadTrackingCall(f"{where}.{name} is longer than 255 characters")
        if message.type == "track" and not message.event:
            raise BadTrackingCall(f"{where} is a track call without an event name")
        if message.type == "alias" and message.previousId in (None, ""):
            raise BadTrackingCall(f"{where} is an alias call without a previousId")
        if message.type == "group":
            if message.groupId in (None, ""):
                raise BadTrackingCall(f"{where} is a group call without a groupId")
            if len(str(message.groupId)) > 255:
                raise BadTrackingCall(f"{where}.groupId is longer than 255 characters")
            tracking_traits.merge_traits({}, message.traits, f"{where}.traits")
        if message.type == "identify":
            tracking_traits.merge_traits(
                {},
                tracking_traits.custom_traits(tracking_traits.all_traits(message)),
                f"{where}.traits",
            )
        message.sentAt = message.sentAt or shared_sent_at
        for name in ("timestamp", "sentAt"):
            value = getattr(message, name)
            if value is not None:
                setattr(message, name, _in_range(value, f"{where}.{name}"))
        if shared_context:
            message.context = {**shared_context, **message.context}
        messages.append(message)
    return messages


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _in_range(value: datetime, name: str) -> datetime:
    moment = aware(value)
    if not EARLIEST <= moment < LATEST:
        raise BadTrackingCall(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return moment.astimezone(UTC)
