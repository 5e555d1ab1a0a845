"""The customer projection: audience rows, behaviour, consents, merges and erasures."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import JSON, Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from rapport_campaign.shared import MONEY, TZ, aware_or_none
from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID


class AudienceMember(SQLModel, table=True):
    """A registered customer as campaigns see them: profile fields plus order metrics."""

    __tablename__ = "campaign_audience"
    __table_args__ = (Index("ix_campaign_audience_channel", "acquisition_channel"),)

    customer_id: str = Field(primary_key=True, max_length=64)
    email: str = Field(max_length=320)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    country: str | None = Field(default=None, max_length=64)
    acquisition_channel: str | None = Field(default=None, max_length=64)
    registered_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    phone: str | None = Field(default=None, max_length=32)
    birth_date: date | None = None
    gender: str | None = Field(default=None, max_length=32)
    income_band: str | None = Field(default=None, max_length=32)
    education: str | None = Field(default=None, max_length=64)
    city: str | None = Field(default=None, max_length=100)
    social_handles: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    # Profile's custom traits (customer.updated `changes.traits`), for `trait` rules.
    traits: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # Profile's customer value (customer.value.changed, rapport_events.value); points, NPS
    # and activity below are recomputed here from the activity rows.
    orders: int = 0
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    average_order_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    lifetime_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    tier: str = Field(default="none", max_length=16)
    first_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_active_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    loyalty_points: int = 0
    nps: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Activity(SQLModel, table=True):
    """One behavioural event of a customer; `event_id` makes a replay a no-op."""

    __tablename__ = "campaign_activity"
    __table_args__ = (
        Index("ix_campaign_activity_customer", "customer_id", "event_type", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    event_id: str = Field(max_length=64, unique=True)
    customer_id: str = Field(max_length=64)
    event_type: str = Field(max_length=64)
    ref: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    url: str | None = Field(default=None, max_length=2048)
    search_query: str | None = Field(default=None, max_length=512)
    coupon: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=128)
    value: Decimal | None = Field(default=None, sa_type=MONEY)
    currency: str | None = Field(default=None, max_length=8)
    balance: int | None = None
    occurred_at: datetime = Field(sa_type=TZ)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class ActivityItem(SQLModel, table=True):
    """One product line of an order or a cart."""

    __tablename__ = "campaign_activity_items"
    __table_args__ = (Index("ix_campaign_activity_items_product", "product_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    activity_id: int = Field(
        sa_column=Column(
            ROW_ID,
            ForeignKey("campaign_activity.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    customer_id: str = Field(max_length=64, index=True)
    product_id: str = Field(max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    price: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    quantity: int = 1


class ConsentState(SQLModel, table=True):
    """Marketing consent per channel, as profile announced it, plus our own suppression."""

    __tablename__ = "campaign_consents"

    customer_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=16)
    granted: bool = False
    version: int = 0
    source: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    # Set by an unsubscribe link: suppresses at once, until a newer grant arrives.
    suppressed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]


class ErasedCustomer(SQLModel, table=True):
    """An erased customer: only the id is kept, so late events for it are dropped."""

    __tablename__ = "campaign_tombstones"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Alias(SQLModel, table=True):
    """A customer merged into another; late events for the old id go to the survivor."""

    __tablename__ = "campaign_aliases"

    merged_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(max_length=64, index=True)
    merged_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class AudienceMemberPublic(BaseModel):
    """An audience member as the API shows it, with the metrics segments use."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    email: str
    first_name: str
    last_name: str
    country: str | None
    city: str | None = None
    acquisition_channel: str | None
    registered_at: datetime
    orders: int = 0
    revenue: Decimal = Decimal(0)
    average_order_value: Decimal = Decimal(0)
    lifetime_value: Decimal = Decimal(0)
    tier: str = "none"
    last_order_at: datetime | None = None
    last_active_at: datetime | None = None
    loyalty_points: int = 0
    traits: dict[str, Any] = {}
    segments: list[str] = []

    @model_validator(mode="after")
    def _utc(self) -> Self:
        for name in ("registered_at", "last_order_at", "last_active_at"):
            setattr(self, name, aware_or_none(getattr(self, name)))
        return self
