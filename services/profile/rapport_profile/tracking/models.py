"""Tracking messages already taken (Segment's messageId), for deduplication."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_profile.shared import TZ


class TrackedMessage(SQLModel, table=True):
    """A tracking call's messageId, so a retried call is applied once."""

    __tablename__ = "profile_tracked_messages"

    message_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=64, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
