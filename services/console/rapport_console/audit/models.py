"""The console's two logs as tables: the access log (who saw a customer's personal data)
and the audit log (who attempted a privileged action, and how it ended)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID

TZ = DateTime(timezone=True)

DETAIL_LENGTH = 500


class AccessEntry(SQLModel, table=True):
    """One operator saw one customer's personal data on one page."""

    __tablename__ = "console_access_log"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    operator: str = Field(max_length=64, index=True)
    role: str = Field(max_length=32)
    customer_id: str = Field(max_length=64, index=True)
    page: str = Field(max_length=64)
    viewed_at: datetime = Field(default_factory=utcnow, sa_type=TZ, index=True)


class Action(StrEnum):
    partner_register = "partner-register"
    partner_delete = "partner-delete"
    operator_create = "operator-create"
    operator_disable = "operator-disable"
    operator_enable = "operator-enable"
    campaign_create = "campaign-create"
    campaign_launch = "campaign-launch"
    customer_erase = "customer-erase"


class Outcome(StrEnum):
    done = "done"
    refused = "refused"  # the console or a service said no (4xx): nothing changed
    failed = "failed"  # a service did not answer (5xx): whether it acted is unknown


class AuditEntry(SQLModel, table=True):
    """One operator attempted one privileged action on one target."""

    __tablename__ = "console_audit_log"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    operator: str = Field(max_length=64, index=True)
    role: str = Field(max_length=32)
    action: str = Field(max_length=32, index=True)
    target: str = Field(max_length=200)
    outcome: str = Field(max_length=16)
    status: int
    detail: str = Field(default="", max_length=DETAIL_LENGTH)
    at: datetime = Field(default_factory=utcnow, sa_type=TZ, index=True)
