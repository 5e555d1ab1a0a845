"""Identities (emails, external ids, aliases, tracking ids) and merges."""

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
)
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_events.limits import Checked
from rapport_profile.shared import TZ, Utc, new_id


class Identity(SQLModel, table=True):
    """What points at a customer: an anonymous id, a tracking user id, or an old id (alias).

    `kind` is `anonymous_id`, `user_id` or `alias`; an alias maps a merged or
    pre-identification id onto the customer it now belongs to.
    """

    __tablename__ = "profile_identities"

    kind: str = Field(primary_key=True, max_length=16)
    value: str = Field(primary_key=True, max_length=255)
    customer_id: str = Field(max_length=64, index=True)
    acquisition_channel: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Merge(SQLModel, table=True):
    """One merge, with what moved, so it can be undone."""

    __tablename__ = "profile_merges"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    customer_id: str = Field(max_length=64, index=True)
    merged_customer_id: str = Field(max_length=64, index=True)
    reason: str = Field(max_length=32)
    actor: str | None = Field(default=None, max_length=128)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    merged_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    undone_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]


class MergeRequest(Checked):
    """Fold `merged_customer_id` into the customer of the path."""

    model_config = ConfigDict(extra="forbid")

    merged_customer_id: str = Field(min_length=1, max_length=64)
    actor: str | None = Field(default=None, max_length=128)


class MergePublic(BaseModel):
    """A merge as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    merged_customer_id: str
    reason: str
    actor: str | None
    merged_at: Utc
    undone_at: Utc | None
