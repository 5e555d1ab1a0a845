"""Orders, customer metrics and stored forecast models: tables and schemas."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import (
    BaseModel,
)
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_profile.shared import MONEY, TZ, Utc


class Order(SQLModel, table=True):
    """A completed order, the ground truth of metrics and trends."""

    __tablename__ = "profile_orders"

    order_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=64, index=True)
    subject_id: str = Field(max_length=64, index=True)
    revenue: Decimal = Field(sa_type=MONEY)
    cost: Decimal | None = Field(default=None, sa_type=MONEY)  # type: ignore[call-overload]
    currency: str = Field(default="EUR", max_length=8)
    items: int = 1
    occurred_at: datetime = Field(sa_type=TZ, index=True)


class CustomerMetrics(SQLModel, table=True):
    """Per-customer aggregates, recomputed from the orders on every change."""

    __tablename__ = "profile_customer_metrics"

    customer_id: str = Field(primary_key=True, max_length=64)
    orders: int = 0
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    profit: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    first_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    # Derived from the columns above by rapport_events.value, kept for search by tier.
    lifetime_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    tier: str = Field(default="none", max_length=16, index=True)
    loyalty_points: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class RfmScores(BaseModel):
    """Scores 1-5 by fixed cut-offs (rapport_events.value), 5 best; null without orders."""

    recency: int | None
    frequency: int | None
    monetary: int | None
    combined: str | None


class MetricsPublic(BaseModel):
    """A customer's metrics as they stand now."""

    customer_id: str
    orders: int
    revenue: Decimal
    average_order_value: Decimal | None
    average_order: Decimal | None  # the same as average_order_value, kept for older clients
    first_order_at: Utc | None
    last_order_at: Utc | None
    recency_days: int | None
    rfm: RfmScores
    lifetime_value: Decimal
    profit: Decimal
    tier: str
    profitability_tier: str  # the same as tier, kept for older clients
    loyalty_points: int


class MonthlySpend(BaseModel):
    """A customer's orders and revenue in one calendar month (UTC)."""

    month: str = PydanticField(pattern=r"^\d{4}-\d{2}$", examples=["2026-11"])
    orders: int
    revenue: Decimal


class ForecastModel(SQLModel, table=True):
    """The last fitted forecast of one metric, interval and window, so a process that
    starts answers from it at once (with its age) while it fits a fresh one."""

    __tablename__ = "profile_forecast_models"

    key: str = Field(primary_key=True, max_length=128)  # forecasts.key_text
    reply: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    fitted_at: datetime = Field(sa_type=TZ)
