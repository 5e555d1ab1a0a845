"""The timeline and the partner disclosure ledger: tables and schemas."""

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
)
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_profile.shared import TZ, Utc


class TimelineEntry(SQLModel, table=True):
    """One event about a customer, from any service."""

    __tablename__ = "profile_timeline"
    __table_args__ = (Index("ix_profile_timeline_customer", "customer_id", "occurred_at", "id"),)

    id: str = Field(primary_key=True, max_length=64)  # the CloudEvent id
    customer_id: str = Field(max_length=64)
    # The id the event was published under, which a merge may have folded away.
    subject_id: str = Field(max_length=64, index=True)
    type: str = Field(max_length=128, index=True)
    source: str = Field(max_length=255)
    occurred_at: datetime = Field(sa_type=TZ)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class TimelineItem(BaseModel):
    """A timeline entry as the API shows it."""

    id: str
    type: str
    source: str
    occurred_at: Utc
    data: dict[str, Any]


class TimelinePage(BaseModel):
    """Newest first; pass `next_cursor` back for older entries."""

    customer_id: str
    items: list[TimelineItem]
    next_cursor: str | None


class Disclosure(SQLModel, table=True):
    """A partner saw slices of a customer (from partner.data.disclosed)."""

    __tablename__ = "profile_disclosures"

    id: str = Field(primary_key=True, max_length=64)  # the CloudEvent id
    customer_id: str = Field(max_length=64, index=True)
    subject_id: str = Field(max_length=64)
    partner_id: str = Field(max_length=64)
    partner_name: str | None = Field(default=None, max_length=200)
    partner_ref: str = Field(max_length=128)
    slices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    purpose: str = Field(max_length=64)
    consent_version: int | None = None
    request_id: str | None = Field(default=None, max_length=128)
    disclosed_at: datetime = Field(sa_type=TZ)


class DisclosurePublic(BaseModel):
    """Which partner saw what, when and why."""

    model_config = ConfigDict(from_attributes=True)

    partner_id: str
    partner_name: str | None
    partner_ref: str
    slices: list[str]
    fields: list[str]
    purpose: str
    consent_version: int | None
    request_id: str | None
    disclosed_at: Utc
