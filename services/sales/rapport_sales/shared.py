"""What sales' domains share: UTC timestamps and ids, the base of reply schemas and the
field types every domain's bodies use, keyset pages, the source and subjects of events, and
the base of the SQL stores (a listing's page newest first, a merge's move of a link table)."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import DateTime, and_, or_
from sqlalchemy.sql import ColumnElement
from sqlmodel import SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from rapport_events.limits import ID_PATTERN, Line
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.unit_of_work import SqlStore

TZ = DateTime(timezone=True)


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- request and reply bodies ----------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Name = Annotated[Line, Field(min_length=1, max_length=200)]
Owner = Annotated[Line, Field(min_length=1, max_length=128)]


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("*")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        """SQLite hands timestamps back naive; every stored one is UTC."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# --- keyset pagination on (created_at, id), newest first, with the shared opaque cursors ----

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


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


# --- sales' events: their source on the log, the subject of an account's own -----------------

SOURCE = "/services/sales"


def account_subject(account_id: str) -> str:
    """The log key of an account's own events: accounts are customers too, companies ones."""
    return f"account:{account_id}"[:64]


# --- the base of sales' SQL stores: a listing's page, a merge's move of a link table ------


class SqlSalesStore(SqlStore):
    """A domain's SQL store, with what the accounts', opportunities' and activities' share."""

    async def newest_first(
        self, query: SelectOfScalar[M], model: Any, limit: int, cursor: str | None
    ) -> tuple[list[M], str | None]:
        """A page of `query`'s rows of `model` after `cursor`, newest first, and the next cursor."""
        created_at, row_id = col(model.created_at), col(model.id)
        after = after_cursor(created_at, row_id, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(created_at.desc(), row_id.desc())
        return page_of(list((await self.session.exec(query.limit(limit + 1))).all()), limit)

    async def move_links(self, model: Any, duplicate: str, survivor: str) -> None:
        """The duplicate's rows of a link table keyed by customer_id and more become the
        survivor's; a link the survivor already has is dropped rather than doubled."""
        others = [c.name for c in model.__table__.primary_key.columns if c.name != "customer_id"]
        query = select(model).where(col(model.customer_id) == duplicate)
        moved = list((await self.session.exec(query)).all())
        kept_query = select(model).where(col(model.customer_id) == survivor)
        kept = {
            tuple(getattr(row, key) for key in others)
            for row in (await self.session.exec(kept_query)).all()
        }
        for row in moved:
            values = row.model_dump()
            await self.session.delete(row)
            if tuple(values[key] for key in others) not in kept:
                self.session.add(model(**{**values, "customer_id": survivor}))
        await self.session.flush()
