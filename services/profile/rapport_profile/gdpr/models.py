"""Erasures and the export: table and schemas."""

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
)
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_profile.shared import TZ, Utc


class Erasure(SQLModel, table=True):
    """The tombstone of an erased customer: only the id and when each service finished."""

    __tablename__ = "profile_erasures"

    customer_id: str = Field(primary_key=True, max_length=64)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    completed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    # service name -> ISO time it was seen holding nothing (null while pending)
    services: dict[str, str | None] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    # Every id erased with this one (merged duplicates, pre-identification ids).
    subjects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ErasureStatus(BaseModel):
    """Where an erasure stands in every service."""

    customer_id: str
    status: Literal["completed", "pending"]
    requested_at: Utc
    completed_at: Utc | None
    services: dict[str, Utc | None]
    status_url: str


class ExportReply(BaseModel):
    """Everything held about a customer; `services` adds the other services' parts."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]
    services: dict[str, dict[str, Any]] = {}
    complete: bool = True
