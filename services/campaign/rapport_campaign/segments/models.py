"""Segments and their members: tables, and the request and reply schemas."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from rapport_campaign.segments.rules import Rule
from rapport_campaign.shared import TZ, aware, aware_or_none, new_id
from rapport_events.base import utcnow
from rapport_events.limits import Checked


class Segment(SQLModel, table=True):
    """A named rule; its members are kept current as events arrive."""

    __tablename__ = "campaign_segments"

    id: str = Field(default_factory=lambda: new_id("seg"), primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Which kinds of event can change membership; the others skip this segment.
    relevance: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    depends_on: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    time_dependent: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    refreshed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]


class SegmentMember(SQLModel, table=True):
    """One customer in one segment."""

    __tablename__ = "campaign_segment_members"
    __table_args__ = (Index("ix_campaign_segment_members_customer", "customer_id"),)

    segment_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    entered_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class SegmentCreate(Checked):
    """A segment to create: a name and a rule (see the rule language in the README)."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(min_length=1, max_length=200)
    description: str | None = PydanticField(default=None, max_length=2000)
    rule: Rule


class SegmentUpdate(Checked):
    """A new name or description; a rule never changes (create a new segment instead)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(default=None, min_length=1, max_length=200)
    description: str | None = PydanticField(default=None, max_length=2000)


class SegmentPreview(Checked):
    """A rule to count without saving it."""

    model_config = ConfigDict(extra="forbid")

    rule: Rule


class PreviewPublic(BaseModel):
    """How many customers a rule matches now, and a few of them."""

    count: int
    sample: list[str]
    time_dependent: bool


class SegmentPublic(BaseModel):
    """A segment as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    rule: dict[str, Any]
    time_dependent: bool
    depends_on: list[str]
    member_count: int = 0
    created_at: datetime
    refreshed_at: datetime | None

    @field_validator("created_at", "refreshed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return aware_or_none(value)


class MemberPublic(BaseModel):
    customer_id: str
    entered_at: datetime

    @field_validator("entered_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return aware(value)


class MemberPage(BaseModel):
    """One page of a segment's members, with the total count."""

    segment_id: str
    count: int
    members: list[MemberPublic]
    next_cursor: str | None
