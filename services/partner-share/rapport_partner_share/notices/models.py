"""Deletion notices to partners (GDPR Art. 19): the signed body, its delivery and the
partner's acknowledgement."""

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from rapport_events.limits import Checked
from rapport_partner_share.shared import UtcDatetime, new_id, when


class Notification(SQLModel, table=True):
    """A signed webhook telling a partner to delete data (GDPR Art. 19), and its acknowledgement."""

    __tablename__ = "partner_share_notifications"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    partner_id: str = Field(max_length=64, index=True)
    # Cleared at erasure; the partner's ref stays so the notice can still be delivered.
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    partner_ref: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    body: str = Field(
        sa_type=Text
    )  # the exact bytes signed and sent, so every retry carries the same signature
    created_at: datetime = when()
    attempts: int = 0
    next_attempt_at: datetime | None = when(nullable=True)
    delivered_at: datetime | None = when(nullable=True)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    acknowledged_at: datetime | None = when(nullable=True)
    acknowledged_via: str | None = Field(default=None, max_length=16)


class NotificationPublic(BaseModel):
    """A deletion notice to a partner, its delivery and its acknowledgement."""

    id: str
    partner_id: str
    ref: str
    type: str
    payload: dict[str, Any]
    created_at: UtcDatetime
    attempts: int
    delivered_at: UtcDatetime | None
    last_status: int | None
    last_error: str | None
    acknowledged_at: UtcDatetime | None
    acknowledged_via: str | None

    @classmethod
    def of(cls, notification: Notification) -> "NotificationPublic":
        return cls(
            id=notification.id,
            partner_id=notification.partner_id,
            ref=notification.partner_ref,
            type=notification.kind,
            payload=json.loads(notification.body),
            created_at=notification.created_at,
            attempts=notification.attempts,
            delivered_at=notification.delivered_at,
            last_status=notification.last_status,
            last_error=notification.last_error,
            acknowledged_at=notification.acknowledged_at,
            acknowledged_via=notification.acknowledged_via,
        )


class NotificationList(BaseModel):
    notifications: list[NotificationPublic]


class AcknowledgementCreate(Checked):
    """The partner confirms it acted on a deletion notice."""

    model_config = ConfigDict(extra="forbid")

    notification_id: str = PydanticField(min_length=1, max_length=64)
