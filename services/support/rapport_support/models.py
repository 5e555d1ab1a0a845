"""Support's tables and the request and reply schemas around them."""

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, computed_field, field_validator
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, SaneDatetime
from rapport_events.types import Priority, TicketStatus

TZ = DateTime(timezone=True)
TicketChannel = Literal["phone", "email", "chat", "social", "web"]
AuthorType = Literal["agent", "customer"]
LinkKind = Literal["related", "duplicate"]
SlaTarget = Literal["first_response", "resolution"]
Sentiment = Literal["positive", "neutral", "negative"]
MentionKind = Literal["complaint", "question", "praise", "other"]
MentionStatus = Literal["new", "ticketed", "replied", "closed"]
ReplyStatus = Literal["pending", "sent", "failed"]
OPEN_STATUSES: tuple[TicketStatus, ...] = ("new", "open", "pending")
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def model_key(product_model: str | None) -> str | None:
    """Product models compare without case or surrounding blanks ("barista x2" = "Barista X2")."""
    if product_model is None:
        return None
    key = " ".join(product_model.split()).lower()
    return key or None


def handle_key(handle: str) -> str:
    """Handles compare without case and without a leading "@"."""
    return handle.strip().lstrip("@").lower()


PLATFORM = re.compile(r"^[A-Za-z0-9_.-]+$")
WEB_ADDRESS = re.compile(r"^https?://\S+$")
UtcDatetime = Annotated[datetime, AfterValidator(aware)]


# --- who the customer is (projected from profile's events) -----------------------


class SupportCustomer(SQLModel, table=True):
    """Who the customer is, kept here so support works while profile is down."""

    __tablename__ = "support_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    email: str = Field(max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    country: str | None = Field(default=None, max_length=64)
    city: str | None = Field(default=None, max_length=128)
    # Profile's customer value (customer.value.changed, rapport_events.value).
    tier: str | None = Field(default=None, max_length=32)
    orders: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    revenue: Decimal = Field(
        default=Decimal(0), sa_type=Numeric(14, 2), sa_column_kwargs={"server_default": "0"}
    )
    lifetime_value: Decimal = Field(
        default=Decimal(0), sa_type=Numeric(14, 2), sa_column_kwargs={"server_default": "0"}
    )
    registered_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))


class SupportConsent(SQLModel, table=True):
    """The newest consent state of one purpose (per channel or partner) of a customer."""

    __tablename__ = "support_consents"
    __table_args__ = (UniqueConstraint("customer_id", "purpose", "scope"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    purpose: str = Field(max_length=32)
    # channel or partner id, "" for the purpose as a whole: NULLs would defeat the constraint.
    scope: str = Field(default="", max_length=128)
    channel: str | None = Field(default=None, max_length=16)
    partner_id: str | None = Field(default=None, max_length=128)
    slices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    granted: bool
    version: int
    source: str | None = Field(default=None, max_length=128)
    changed_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportHandle(SQLModel, table=True):
    """A social handle of a customer, so a mention can be linked to them."""

    __tablename__ = "support_handles"

    platform: str = Field(primary_key=True, max_length=64)
    handle_key: str = Field(primary_key=True, max_length=256)
    handle: str = Field(max_length=256)
    customer_id: str = Field(max_length=64, index=True)


class SupportMergedCustomer(SQLModel, table=True):
    """A duplicate folded into another customer; late events for it go to the survivor."""

    __tablename__ = "support_merged_customers"

    merged_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(max_length=64, index=True)
    merged_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SupportErasedCustomer(SQLModel, table=True):
    """The only trace of an erased customer: later events about them are dropped."""

    __tablename__ = "support_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(sa_column=Column(TZ, nullable=False))


# --- products owned (projected from order.completed) -----------------------------


class SupportProduct(SQLModel, table=True):
    """One product line a customer bought, with its warranty."""

    __tablename__ = "support_products"
    __table_args__ = (UniqueConstraint("customer_id", "order_id", "line_no"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    order_id: str = Field(max_length=128)
    line_no: int
    product_id: str = Field(max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    product_model_key: str | None = Field(default=None, max_length=128, index=True)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    serial_number: str | None = Field(default=None, max_length=128)
    quantity: int = 1
    purchased_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    warranty_ends_on: date = Field(sa_column=Column(Date, nullable=False))


# --- tickets ------------------------------------------------------------------------


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


# --- social mentions ------------------------------------------------------------------


class SupportMention(SQLModel, table=True):
    """A mention on a social platform, linked to a customer when the handle is known."""

    __tablename__ = "support_mentions"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        Index("ix_support_mentions_handle", "platform", "handle_key"),
        Index("ix_support_mentions_listing", "received_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    platform: str = Field(max_length=64)
    handle: str = Field(max_length=256)
    handle_key: str = Field(max_length=256)
    external_id: str | None = Field(default=None, max_length=256)
    text: str = Field(sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, max_length=2048)
    posted_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    received_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    # The customer id on the log: the customer's, or the handle's key while unlinked.
    subject_id: str = Field(max_length=64)
    sentiment: str = Field(max_length=16)
    sentiment_score: float
    kind: str = Field(max_length=16)
    status: str = Field(default="new", max_length=16)
    ticket_id: str | None = Field(default=None, max_length=64)


class SupportMentionReply(SQLModel, table=True):
    """An answer to a mention, delivered to the platform's webhook with retries."""

    __tablename__ = "support_mention_replies"
    __table_args__ = (Index("ix_support_mention_replies_due", "status", "next_attempt_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    mention_id: str = Field(max_length=64, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=128)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))


class SupportReplyAttempt(SQLModel, table=True):
    """One delivery attempt of a reply, kept for PR staff and for audits."""

    __tablename__ = "support_reply_attempts"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    reply_id: str = Field(max_length=64, index=True)
    attempt: int
    attempted_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: float


# --- request and reply schemas ----------------------------------------------------------

T = TypeVar("T")


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class ConsentPublic(_Public):
    purpose: str
    channel: str | None
    partner_id: str | None
    slices: list[str]
    granted: bool
    version: int
    changed_at: UtcDatetime


class CustomerSummary(_Public):
    """Who the customer is, as the log last told support."""

    customer_id: str
    email: str
    phone: str | None
    first_name: str
    last_name: str
    country: str | None = None
    city: str | None = None
    tier: str | None = None
    orders: int = 0
    revenue: Decimal = Decimal(0)
    lifetime_value: Decimal = Decimal(0)
    registered_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    social_handles: dict[str, str] = {}
    consents: list[ConsentPublic] = []


class ProductPublic(_Public):
    """A product the customer owns."""

    product_id: str
    product_model: str | None
    name: str | None
    category: str | None
    serial_number: str | None
    quantity: int
    order_id: str
    purchased_at: UtcDatetime
    warranty_ends_on: date
    under_warranty: bool = False


class BreachPublic(_Public):
    target: SlaTarget
    priority: Priority
    due_at: UtcDatetime
    breached_at: UtcDatetime


class TicketPublic(_Public):
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


class CommentPublic(_Public):
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


class TicketSummary(_Public):
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


class MentionSummary(_Public):
    id: str
    platform: str
    handle: str
    text: str
    url: str | None
    posted_at: UtcDatetime
    sentiment: Sentiment
    kind: MentionKind
    status: MentionStatus
    ticket_id: str | None


class SupportContext(BaseModel):
    """Everything a rep sees when a customer calls, from support's own projection."""

    customer_id: str
    customer: CustomerSummary | None
    products: list[ProductPublic] = []
    tickets: list[TicketSummary] = []
    open_tickets: int = 0
    mentions: list[MentionSummary] = []


class ResolutionCount(BaseModel):
    resolution: str
    tickets: int


class CategoryIssues(BaseModel):
    category: str
    tickets: int
    share: float
    resolved: int
    resolutions: list[ResolutionCount]


class SimilarTicket(BaseModel):
    ticket: TicketSummary
    score: float


class KnownIssues(BaseModel):
    """What usually goes wrong with a product model, and how it was fixed."""

    product_model: str
    tickets: int
    open_tickets: int
    categories: list[CategoryIssues]
    similar: list[SimilarTicket] = []


class QueueItem(TicketPublic):
    """A ticket in an agent's queue, with the next SLA due time."""

    next_due_at: UtcDatetime | None
    breached: bool


class Queue(BaseModel):
    agent: str
    tickets: list[QueueItem]
    breached: int


class MentionCreate(Checked):
    """A mention on a social platform; `external_id` (the platform's id) makes retries safe."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=64, description="twitter, instagram, ...")
    handle: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=10_000)
    url: str | None = Field(default=None, max_length=2048)
    time: SaneDatetime | None = Field(default=None, description="When it was posted (default: now)")
    external_id: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("platform")
    @classmethod
    def _platform_slug(cls, value: str) -> str:
        if not PLATFORM.match(value):
            raise ValueError("platform is letters, digits, '.', '_' or '-'")
        return value.lower()

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not WEB_ADDRESS.match(value):
            raise ValueError("url must be an http(s) address")
        return value

    @field_validator("handle", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip().lstrip("@"):
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware(value) if value is not None else None


class MentionUpdate(Checked):
    model_config = ConfigDict(extra="forbid")

    status: MentionStatus


class AttemptPublic(_Public):
    attempt: int
    attempted_at: UtcDatetime
    status_code: int | None
    error: str | None
    duration_ms: float


class ReplyPublic(_Public):
    id: str
    mention_id: str
    text: str
    author: str
    status: ReplyStatus
    attempts: int
    next_attempt_at: UtcDatetime | None
    last_error: str | None
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    delivery: list[AttemptPublic] = []


class MentionPublic(_Public):
    """A mention as PR staff see it."""

    id: str
    platform: str
    handle: str
    external_id: str | None
    text: str
    url: str | None
    posted_at: UtcDatetime
    received_at: UtcDatetime
    customer_id: str | None
    sentiment: Sentiment
    sentiment_score: float
    kind: MentionKind
    status: MentionStatus
    ticket_id: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def linked(self) -> bool:
        """True when the handle belongs to a known customer."""
        return self.customer_id is not None


class MentionDetail(MentionPublic):
    replies: list[ReplyPublic] = []


class ReplyCreate(Checked):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5_000)
    author: str = Field(min_length=1, max_length=128)


class CustomerExport(BaseModel):
    """Everything support holds about one customer, table by table."""

    service: str = "support"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]
