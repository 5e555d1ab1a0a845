"""What recipients did with a message: clicks, credited orders, unsubscribes."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from rapport_campaign.shared import MONEY, TZ
from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID


class Click(SQLModel, table=True):
    """A click through a tracked link: the touch that attribution credits."""

    __tablename__ = "campaign_clicks"
    __table_args__ = (Index("ix_campaign_clicks_customer", "customer_id", "clicked_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    message_id: str = Field(max_length=64, index=True)
    campaign_id: str = Field(max_length=64)
    customer_id: str | None = Field(default=None, max_length=64)
    url: str = Field(max_length=2048)
    clicked_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Conversion(SQLModel, table=True):
    """An order credited to a campaign message."""

    __tablename__ = "campaign_conversions"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    order_key: str | None = Field(default=None, max_length=200, unique=True)
    order_id: str | None = Field(default=None, max_length=128)
    message_id: str = Field(max_length=64, index=True)
    campaign_id: str = Field(max_length=64, index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    variant: str | None = Field(default=None, max_length=64)
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    currency: str = Field(default="EUR", max_length=8)
    model: str = Field(max_length=16)
    touch: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TZ)


class Unsubscribe(SQLModel, table=True):
    """A click on an unsubscribe link, until profile has recorded the revocation."""

    __tablename__ = "campaign_unsubscribes"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)
    message_id: str | None = Field(default=None, max_length=64)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    synced_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_error: str | None = Field(default=None, max_length=500)
