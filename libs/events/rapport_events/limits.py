"""Input limits every service's request schemas share: one vocabulary of bounded types.

Free-form JSON is walked without recursion before pydantic (or `json.dumps`, or the
database) touches it, so a value nested 100,000 deep is a 4xx and never a
RecursionError. Every string of a request body is refused when it holds control
characters: PostgreSQL text cannot hold NUL, and the log's readers should not meet
the others.
"""

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

# Every service's cap on a request body (FastAPI's `max_body_size`): 413 past it.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Nesting of free-form JSON (traits, properties, context...): an object or a list is a level.
MAX_DEPTH = 16
# Objects and lists a whole request body may nest; free-form fields sit a few levels down.
MAX_BODY_DEPTH = 32
# Entries of every object and list of one free-form value, counted together.
MAX_JSON_ENTRIES = 1_000
MAX_KEY_LENGTH = 256
MAX_JSON_STRING = 10_000
# Small string maps: social handles, external ids.
MAX_MAP_ENTRIES = 50
# Anything earlier or later is a typo or a probe, and overflows date arithmetic.
EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Ids in paths: UUIDs, `anon:`/`user:` pseudo ids, `cmp_…` and the like. Nothing that
# could change a URL built from it (`/`, `?`, `#`, `%`, dot segments, controls).
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@+=~-]{0,63}$"

# C0 controls but tab, line feed and carriage return; DEL; C1 controls; lone surrogates
# (JSON's `\ud800` decodes to one, and no database encoding can store it).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class LimitExceeded(ValueError):
    """A request value past one of the limits; the message names where."""


def _where(path: str) -> str:
    # A path down a deep value would make the reply as large as the value.
    return (path if len(path) <= 120 else f"{path[:100]}…") or "the value"


def check_text(value: str, where: str = "", *, multiline: bool = True) -> str:
    """`value` unless it holds control characters (tab and line breaks allowed if multiline)."""
    found = (_CONTROL if multiline else _LINE_CONTROL).search(value)
    if found:
        code = ord(found.group())
        name = "NUL, " if code == 0 else ""
        raise LimitExceeded(
            f"{_where(where)} must not contain control characters "
            f"({name}U+{code:04X} at {found.start()})"
        )
    return value


def check_json(
    value: Any,
    where: str = "",
    *,
    max_depth: int = MAX_DEPTH,
    max_entries: int | None = MAX_JSON_ENTRIES,
    max_string: int | None = MAX_JSON_STRING,
    max_key: int = MAX_KEY_LENGTH,
) -> None:
    """Refuse JSON nested deeper than `max_depth`, too large, or holding control characters.

    Iterative, so it is safe on any depth; it stops at the first problem.
    """
    entries = 0
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if max_string is not None and len(item) > max_string:
                raise LimitExceeded(f"{_where(path)} is longer than {max_string} characters")
            check_text(item, path)
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= max_depth:
            raise LimitExceeded(f"{_where(path)} is nested deeper than {max_depth} levels")
        entries += len(item)
        if max_entries is not None and entries > max_entries:
            raise LimitExceeded(f"{_where(where)} has more than {max_entries} entries in all")
        if isinstance(item, dict):
            for key, child in item.items():
                name = str(key)
                if len(name) > max_key:
                    raise LimitExceeded(f"a key in {_where(path)} is longer than {max_key}")
                check_text(name, f"a key in {_where(path)}", multiline=False)
                stack.append((child, f"{path}.{name}" if path else name, depth + 1))
        else:
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


def free_json(
    *,
    max_depth: int = MAX_DEPTH,
    max_entries: int = MAX_JSON_ENTRIES,
    max_string: int = MAX_JSON_STRING,
) -> Callable[[Any], Any]:
    """A before-validator bounding a free-form JSON field (see `check_json`)."""

    def _check(value: Any) -> Any:
        check_json(value, max_depth=max_depth, max_entries=max_entries, max_string=max_string)
        return value

    return _check


def _line(value: str) -> str:
    return check_text(value, multiline=False)


def _text(value: str) -> str:
    return check_text(value)


def sane_datetime(value: datetime) -> datetime:
    """`value` unless it lies outside EARLIEST..LATEST (naive is taken as UTC)."""
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= moment < LATEST:
        raise LimitExceeded(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


def sane_date(value: date) -> date:
    """`value` unless it lies outside EARLIEST..LATEST."""
    if not EARLIEST.date() <= value < LATEST.date():
        raise LimitExceeded(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


# A single-line string: no control characters at all (names, keys, ids).
Line = Annotated[str, AfterValidator(_line)]
# Free text: tabs and line breaks allowed, other control characters not.
Text = Annotated[str, AfterValidator(_text)]
SaneDatetime = Annotated[datetime, AfterValidator(sane_datetime)]
SaneDate = Annotated[date, AfterValidator(sane_date)]
# Free-form objects (traits, properties, context, answers): bounded before validation.
FreeJson = Annotated[dict[str, Any], BeforeValidator(free_json())]
# `platform -> handle`, `system -> id` and the like.
StringMap = Annotated[
    dict[
        Annotated[Line, Field(min_length=1, max_length=64)],
        Annotated[Line, Field(max_length=256)],
    ],
    Field(max_length=MAX_MAP_ENTRIES),
]
# An id in a path: anything else is a 422, so no peer URL or query ever sees it.
PathId = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="a record's id"),
]
CustomerIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="a customer id (a UUID, or the `anon:`/`user:` id of a visitor)",
    ),
]


class Checked(BaseModel):
    """A request body: every string and key free of control characters, nesting bounded.

    Runs before the fields are validated, so nothing recursive sees a deep value;
    sizes are each field's own limits (and the request body's cap).
    """

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        check_json(data, max_depth=MAX_BODY_DEPTH, max_entries=None, max_string=None)
        return data
