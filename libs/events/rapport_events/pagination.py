"""Keyset pagination: a page ends with a cursor holding its last row's sort keys.

The cursor is opaque to clients (URL-safe base64 of a JSON list) and is checked before
any key reaches a query: a cursor this service did not hand out is a 4xx, never a 500.
"""

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rapport_events import errors

CURSOR_MAX_LENGTH = 512
KEY_MAX_LENGTH = 64  # ids: uuids, and never longer than the id columns (64)
REFUSAL = "cursor is not one this service handed out"


class BadCursor(errors.InvalidRequest):
    """A listing cursor that this service did not hand out (422)."""


def encode_cursor(*keys: str | int | datetime) -> str:
    """The sort keys of a page's last row, as the cursor of the next page."""
    values = [key.isoformat() if isinstance(key, datetime) else key for key in keys]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str,
    *kinds: type[str] | type[int] | type[datetime],
    refuse: Callable[[str], Exception] = BadCursor,
) -> tuple[Any, ...]:
    """The keys `encode_cursor` was given, one of each kind asked for (datetimes in UTC).

    Anything else raises `refuse(message)`: the service's own 4xx where it has one.
    """
    if len(cursor) > CURSOR_MAX_LENGTH:
        raise refuse(REFUSAL)
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("not the keys of this listing")
        return tuple(_key(value, kind) for value, kind in zip(values, kinds, strict=True))
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as error:
        raise refuse(REFUSAL) from error


def _key(value: Any, kind: type[str] | type[int] | type[datetime]) -> str | int | datetime:
    if kind is datetime:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if kind is int:
        if type(value) is not int or not 0 <= value < 2**63:
            raise ValueError("not a row number")
        return value
    # A NUL or an over-long key would reach the database as a parameter and fail there.
    if not isinstance(value, str) or not 0 < len(value) <= KEY_MAX_LENGTH or "\x00" in value:
        raise ValueError("not a key")
    return value
