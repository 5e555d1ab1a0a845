"""Tickets, their comments and links, SLA policies and breaches, and the request and reply
schemas around them."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked
from rapport_events.types import Priority, TicketStatus
from rapport_support.shared import TZ, Public, UtcDatetime, new_id

TicketChannel = Literal["phone", "email", "chat", "social", "web"]
AuthorType = Literal["agent", "customer"]
LinkKind = Literal["related", "duplicate"]
SlaTarget = Literal["first_response", "resolution"]


OPEN_STATUSES: tuple[TicketStatus, ...] = ("new", "open", "pending")
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")


# --- tables --------------------------------------------------------------------------------------


class SupportTicket(SQLModel, table=True):
    """A support ticket; SLA due times are fixed when it opens or its priority changes."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        Index("ix_support_tickets_customer", "customer_id", "created_at"),
        Index("ix_support_tickets_queue", "assignee", "status"),
        Index("ix_support_tickets_listing", "created_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    customer_id: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(default="new", max_length=16, index=True)
    priority: str = Field(default="normal", max_length=16)
    category: str | None = Field(default=None, max_length=64)
    channel: str = Field(default="email", max_length=16)
    assignee: str | None = Field(default=None, max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    product_model_key: str | None = Field(default=None, max_length=128, index=True)
    serial_number: str | None = Field(default=None, max_length=128)
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duplicate_of: str | None = Field(default=None, max_length=64)
    mention_id: str | None = Field(default=None, max_length=64)
    rating: int | None = None
    rating_comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    rated_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    first_responded_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    first_response_due_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    resolution_due_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportTicketComment(SQLModel, table=True):
    """A comment on a ticket: public ones are seen by the customer, internal ones are not."""

    __tablename__ = "support_ticket_comments"
    __table_args__ = (Index("ix_support_ticket_comments_ticket", "ticket_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    ticket_id: str = Field(max_length=64)
    author: str = Field(max_length=128)
    author_type: str = Field(default="agent", max_length=16)
    body: str = Field(sa_column=Column(Text, nullable=False))
    public: bool = True
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportTicketLink(SQLModel, table=True):
    """Two tickets about the same thing; stored once, lower id first."""

    __tablename__ = "support_ticket_links"

    ticket_id: str = Field(primary_key=True, max_length=64)
    linked_ticket_id: str = Field(primary_key=True, max_length=64, index=True)
    kind: str = Field(default="related", max_length=16)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportSlaPolicy(SQLModel, table=True):
    """Targets of one priority, overriding the configured defaults."""

    __tablename__ = "support_sla_policies"

    priority: str = Field(primary_key=True, max_length=16)
    first_response_minutes: int = Field(sa_column=Column(Integer, nullable=False))
    resolution_minutes: int = Field(sa_column=Column(Integer, nullable=False))
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportSlaBreach(SQLModel, table=True):
    """A missed SLA target; recorded once per ticket and target."""

    __tablename__ = "support_sla_breaches"
    __table_args__ = (UniqueConstraint("ticket_id", "target"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    ticket_id: str = Field(max_length=64, index=True)
    target: str = Field(max_length=16)
    priority: str = Field(max_length=16)
    due_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    breached_at: datetime = Field(sa_column=Column(TZ, nullable=False))


# --- request and reply schemas -------------------------------------------------------------------


class BreachPublic(Public):
    target: SlaTarget
    priority: Priority
    due_at: UtcDatetime
    breached_at: UtcDatetime


class TicketPublic(Public):
    """A ticket with its SLA clock."""

    id: str
    customer_id: str
    subject: str
    description: str
    status: TicketStatus
    priority: Priority
    category: str | None
    channel: TicketChannel
    assignee: str | None
    product_model: str | None
    serial_number: str | None
    resolution: str | None
    duplicate_of: str | None
    mention_id: str | None
    rating: int | None
    rating_comment: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    first_responded_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    closed_at: UtcDatetime | None
    first_response_due_at: UtcDatetime
    resolution_due_at: UtcDatetime
    breaches: list[BreachPublic] = []


class CommentPublic(Public):
    id: str
    ticket_id: str
    author: str
    author_type: AuthorType
    body: str
    public: bool
    created_at: UtcDatetime


class LinkPublic(BaseModel):
    ticket_id: str
    kind: LinkKind
    created_at: UtcDatetime


class TicketDetail(TicketPublic):
    """A ticket with its comments (public and internal) and linked tickets."""

    comments: list[CommentPublic] = []
    links: list[LinkPublic] = []


def _stripped(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class TicketCreate(Checked):
    """A new ticket; a serial number of a product the customer owns fills in its model."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "3f0c6f0e-5a8e-4c57-9c3e-2b1f0f7d9a11",
                    "subject": "X2 does not charge",
                    "description": "The charging light stays off since the last update.",
                    "priority": "high",
                    "category": "charging",
                    "channel": "email",
                    "serial_number": "X2-000123",
                }
            ]
        },
    )

    customer_id: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    priority: Priority = "normal"
    category: str | None = Field(default=None, max_length=64)
    channel: TicketChannel = "email"
    assignee: str | None = Field(default=None, max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    serial_number: str | None = Field(default=None, max_length=128)

    @field_validator("subject")
    @classmethod
    def _subject_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("subject must not be blank")
        return value.strip()

    @field_validator("category", "assignee", "product_model", "serial_number")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return _stripped(value)


class TicketUpdate(Checked):
    """A partial change; `resolution` is required when the status becomes resolved."""

    model_config = ConfigDict(extra="forbid")

    status: TicketStatus | None = None
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=64)
    assignee: str | None = Field(default=None, max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    serial_number: str | None = Field(default=None, max_length=128)
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    resolution: str | None = Field(default=None, min_length=1, max_length=20_000)


class CommentCreate(Checked):
    """A comment; an agent's first public one is the ticket's first response."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20_000)
    author: str = Field(min_length=1, max_length=128)
    author_type: AuthorType = "agent"
    public: bool = True

    @field_validator("body")
    @classmethod
    def _body_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("body must not be blank")
        return value


class LinkCreate(Checked):
    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(min_length=1, max_length=64)
    kind: LinkKind = "related"


class MergeRequest(Checked):
    """Fold this ticket into `into_ticket_id` (same customer, still open)."""

    model_config = ConfigDict(extra="forbid")

    into_ticket_id: str = Field(min_length=1, max_length=64)
    actor: str | None = Field(default=None, max_length=128)


class RatingCreate(Checked):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5_000)


class SlaPolicyPublic(BaseModel):
    priority: Priority
    first_response_minutes: int
    resolution_minutes: int
    configured: bool = Field(description="False while the service's default applies")


class SlaPolicyUpdate(Checked):
    model_config = ConfigDict(extra="forbid")

    first_response_minutes: int = Field(ge=0, le=525_600)
    resolution_minutes: int = Field(ge=0, le=525_600)


class TicketSummary(Public):
    """An earlier ticket as the rep sees it in the customer's history."""

    id: str
    subject: str
    status: TicketStatus
    priority: Priority
    category: str | None
    channel: TicketChannel
    product_model: str | None
    serial_number: str | None
    resolution: str | None
    rating: int | None
    created_at: UtcDatetime
    resolved_at: UtcDatetime | None


class SimilarTicket(BaseModel):
    ticket: TicketSummary
    score: float


class QueueItem(TicketPublic):
    """A ticket in an agent's queue, with the next SLA due time."""

    next_due_at: UtcDatetime | None
    breached: bool


class Queue(BaseModel):
    agent: str
    tickets: list[QueueItem]
    breached: int
