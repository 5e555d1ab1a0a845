"""What partner-share's domains share: ids, UTC timestamps, the column helpers of their
tables, the source of the events they publish, and the bulk delete of a customer's or a
partner's rows."""

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, col

if TYPE_CHECKING:
    from rapport_partner_share.consents.models import PartnerConsent
    from rapport_partner_share.slices.models import MatchKey, SharedSlice

SOURCE = "/services/partner-share"
USER_AGENT = "rapport-partner-share"


def new_id() -> str:
    return str(uuid.uuid4())


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; SQLite hands datetimes back without their zone (they were written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601; SQLite hands datetimes back without their zone."""
    return as_utc(moment).isoformat()


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def when(nullable: bool = False) -> Any:
    """A timestamp column with its zone."""
    column = Column(DateTime(timezone=True), nullable=nullable)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def json_column() -> Any:
    """A JSON column that is never null."""
    return Field(sa_column=Column(JSON, nullable=False))


def owner(
    table: "type[PartnerConsent] | type[SharedSlice] | type[MatchKey]",
    customer_id: str | None,
    partner_id: str | None,
) -> list:  # type: ignore[type-arg]
    """The conditions of a bulk delete of one customer's or one partner's rows."""
    if customer_id is None and partner_id is None:
        raise ValueError("a bulk delete needs a customer or a partner")
    conditions = []
    if customer_id is not None:
        conditions.append(col(table.customer_id) == customer_id)
    if partner_id is not None:
        conditions.append(col(table.partner_id) == partner_id)
    return conditions
