"""Keyset pagination on (created_at, id), newest first, with the shared opaque cursors."""

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, or_
from sqlalchemy.sql import ColumnElement

from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_sales.models import aware

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def after_cursor(created_at: Any, row_id: Any, cursor: str | None) -> ColumnElement[bool] | None:
    """The condition for rows after `cursor` in (created_at, id) descending order."""
    if cursor is None:
        return None
    at, last_id = decode_cursor(cursor, datetime, str)
    return or_(created_at < at, and_(created_at == at, row_id < last_id))


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The first `limit` rows (fetched limit + 1) and the cursor after them, if more exist."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    return kept, encode_cursor(aware(kept[-1].created_at), kept[-1].id)
