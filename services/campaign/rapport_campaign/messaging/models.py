"""One message of a campaign to one customer, from targeting to conversion."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from rapport_campaign.shared import TZ
from rapport_events.base import utcnow

# Key of a message's context holding the URLs it was sent with click tokens for.
LINKS = "links"


class Message(SQLModel, table=True):
    """One message of a campaign to one customer, from targeting to conversion."""

    __tablename__ = "campaign_messages"
    __table_args__ = (
        Index("ix_campaign_messages_due", "status", "due_at"),
        Index("ix_campaign_messages_customer", "customer_id", "channel", "sent_at"),
    )

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=64)
    campaign_id: str = Field(max_length=64, index=True)
    # Null once the customer is erased: the counts stay, the person goes.
    customer_id: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=16)
    variant: str | None = Field(default=None, max_length=64)
    # held (waiting for an A/B winner), pending, sending, sent, suppressed, capped,
    # unreachable, failed, cancelled
    status: str = Field(default="pending", max_length=16)
    reason: str | None = Field(default=None, max_length=500)
    offer_code: str | None = Field(default=None, max_length=64, unique=True)
    address: str | None = Field(default=None, max_length=320)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    sent_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    delivered_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    opened_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    clicked_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    redeemed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    redeemed_order_id: str | None = Field(default=None, max_length=128)
