"""Profile's tables and the request and reply schemas around them."""

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    field_validator,
    model_validator,
)
from sqlalchemy import JSON, Column, DateTime, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, StringMap, sane_date
from rapport_events.types import Channel, Purpose, Slice

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
TZ = DateTime(timezone=True)
MONEY = Numeric(14, 2)


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Utc = Annotated[datetime, AfterValidator(aware)]


def utc(value: datetime) -> datetime:
    """Stored in UTC: SQLite keeps no offset, so a +02:00 time must be converted first."""
    return aware(value).astimezone(UTC)


# --- customers -------------------------------------------------------------------


class CustomerBase(SQLModel):
    email: EmailStr = Field(max_length=320)
    phone: str | None = Field(default=None, max_length=16)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    birth_date: date | None = None
    gender: str | None = Field(default=None, max_length=32)
    income_band: str | None = Field(default=None, max_length=32)
    education: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    city: str | None = Field(default=None, max_length=100)
    acquisition_channel: str | None = Field(default=None, max_length=64)


class Customer(CustomerBase, table=True):
    """One known customer; a merged one points at the customer it was folded into."""

    __tablename__ = "profile_customers"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    email: str = Field(max_length=320, unique=True, index=True)
    # Customers learnt from tracking calls may have no name yet.
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    social_handles: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    external_ids: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    # Traits from tracking calls that have no column of their own (tracking.CUSTOM_TRAITS_*).
    traits: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    status: str = Field(default="active", max_length=16)
    merged_into: str | None = Field(default=None, max_length=64)
    consent_version: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


def _e164(value: str | None) -> str | None:
    if value is not None and not E164.match(value):
        raise ValueError("phone must be in E.164 form, like +14155550100")
    return value


def _past(value: date | None) -> date | None:
    if value is not None and value > utcnow().date():
        raise ValueError("birth_date cannot be in the future")
    return sane_date(value) if value is not None else None


class CustomerCreate(CustomerBase, Checked):
    """What a caller sends to register a customer."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "phone": "+442079460000",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "country": "GB",
                    "city": "London",
                    "acquisition_channel": "newsletter",
                    "social_handles": {"mastodon": "@ada@example.social"},
                    "external_ids": {"shop": "c-1815"},
                }
            ]
        },
    )

    social_handles: StringMap = {}
    external_ids: StringMap = {}

    @field_validator("email")
    @classmethod
    def _lowercase_email(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("phone")
    @classmethod
    def _e164_phone(cls, value: str | None) -> str | None:
        return _e164(value)

    @field_validator("birth_date")
    @classmethod
    def _birth_date_in_past(cls, value: date | None) -> date | None:
        return _past(value)

    @field_validator("country")
    @classmethod
    def _upper_country(cls, value: str | None) -> str | None:
        return value.upper() if value else value


REQUIRED_ON_PATCH = ("email", "first_name", "last_name")


class CustomerUpdate(Checked):
    """A partial change; fields left out stay as they are, null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=16)
    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    birth_date: date | None = None
    gender: str | None = Field(default=None, max_length=32)
    income_band: str | None = Field(default=None, max_length=32)
    education: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    city: str | None = Field(default=None, max_length=100)
    acquisition_channel: str | None = Field(default=None, max_length=64)
    social_handles: StringMap | None = None
    external_ids: StringMap | None = None

    @field_validator("email")
    @classmethod
    def _lowercase_email(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else value

    @field_validator("phone")
    @classmethod
    def _e164_phone(cls, value: str | None) -> str | None:
        return _e164(value)

    @field_validator("birth_date")
    @classmethod
    def _birth_date_in_past(cls, value: date | None) -> date | None:
        return _past(value)

    @field_validator("country")
    @classmethod
    def _upper_country(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @model_validator(mode="after")
    def _required_fields_stay_set(self) -> Self:
        cleared = [name for name in REQUIRED_ON_PATCH if name in self.model_fields_set]
        cleared = [name for name in cleared if getattr(self, name) is None]
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        """Only the fields the caller sent; null empties the handles and external ids."""
        changes = self.model_dump(exclude_unset=True)
        for name in ("social_handles", "external_ids"):
            if name in changes and changes[name] is None:
                changes[name] = {}
        return changes


class CustomerPublic(BaseModel):
    """A customer as the API shows it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c6f0e-5a8e-4c57-9c3e-2b1f0f7d9a11",
                    "email": "ada@example.com",
                    "phone": "+442079460000",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "birth_date": None,
                    "gender": None,
                    "income_band": None,
                    "education": None,
                    "country": "GB",
                    "city": "London",
                    "acquisition_channel": "newsletter",
                    "social_handles": {"mastodon": "@ada@example.social"},
                    "external_ids": {"shop": "c-1815"},
                    "status": "active",
                    "merged_into": None,
                    "created_at": "2026-03-01T10:00:00Z",
                    "updated_at": "2026-03-01T10:00:00Z",
                }
            ]
        },
    )

    id: str
    email: str
    phone: str | None
    first_name: str
    last_name: str
    birth_date: date | None
    gender: str | None
    income_band: str | None
    education: str | None
    country: str | None
    city: str | None
    acquisition_channel: str | None
    social_handles: dict[str, str]
    external_ids: dict[str, str]
    traits: dict[str, Any] = {}
    status: str = "active"
    merged_into: str | None = None
    created_at: Utc
    updated_at: Utc


class AccountPublic(BaseModel):
    """An account (a company, from a Segment group call) the customer belongs to."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    traits: dict[str, Any]
    created_at: Utc
    updated_at: Utc


class CustomerDetail(CustomerPublic):
    """One customer with the accounts they belong to."""

    accounts: list[AccountPublic] = []


class CustomerPage(BaseModel):
    """One page of a customer search; pass `next_cursor` back for the next."""

    items: list[CustomerPublic]
    next_cursor: str | None


EVENT_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "gender",
    "income_band",
    "education",
    "country",
    "city",
    "acquisition_channel",
    "social_handles",
    "external_ids",
)


def event_fields(customer: Customer) -> dict[str, Any]:
    """The customer's attributes as they travel in customer events."""
    return {name: getattr(customer, name) for name in EVENT_FIELDS}


class IdempotentRequest(SQLModel, table=True):
    """A POST already answered under an Idempotency-Key, replayed on retry."""

    __tablename__ = "profile_idempotency_keys"

    key: str = Field(primary_key=True, max_length=320)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


# --- identities --------------------------------------------------------------------


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


# --- consents ----------------------------------------------------------------------


class Consent(SQLModel, table=True):
    """The current state of one consent of a customer."""

    __tablename__ = "profile_consents"
    __table_args__ = (
        UniqueConstraint(
            "customer_id", "purpose", "channel", "partner_id", name="uq_profile_consent"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    purpose: str = Field(max_length=32)
    # "" rather than NULL so the unique constraint holds on every database.
    channel: str = Field(default="", max_length=16)
    partner_id: str = Field(default="", max_length=64)
    slices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    granted: bool
    version: int
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ConsentChange(SQLModel, table=True):
    """One entry of a customer's consent history: the receipt."""

    __tablename__ = "profile_consent_history"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    version: int
    purpose: str = Field(max_length=32)
    channel: str = Field(default="", max_length=16)
    partner_id: str = Field(default="", max_length=64)
    slices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    granted: bool
    source: str = Field(max_length=64)
    text_version: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=128)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class ConsentUpdate(Checked):
    """A consent given or withdrawn, for a purpose on a channel or for a partner."""

    model_config = ConfigDict(extra="forbid")

    purpose: Purpose
    channel: Channel | None = None
    partner_id: str | None = Field(default=None, min_length=1, max_length=64)
    slices: list[Slice] = Field(default_factory=list, max_length=5)
    granted: bool
    source: str = Field(default="api", min_length=1, max_length=64)
    text_version: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _scope_matches_purpose(self) -> Self:
        if self.purpose == "marketing" and self.channel is None:
            raise ValueError("marketing consent needs a channel (email, sms, push or social)")
        if self.purpose != "marketing" and self.channel is not None:
            raise ValueError("only marketing consent has a channel")
        if self.purpose == "partner_sharing":
            if self.partner_id is None:
                raise ValueError("partner_sharing consent needs a partner_id")
            if self.granted and not self.slices:
                raise ValueError("a partner_sharing grant needs at least one slice")
        elif self.partner_id is not None or self.slices:
            raise ValueError("only partner_sharing consent has a partner_id and slices")
        self.slices = sorted(set(self.slices))  # type: ignore[assignment]
        return self


class ConsentPublic(BaseModel):
    """One consent as it stands."""

    purpose: str
    channel: str | None
    partner_id: str | None
    slices: list[str]
    granted: bool
    version: int
    updated_at: Utc


class ConsentHistoryEntry(BaseModel):
    """One change in the consent receipt: who, when, from where, under which wording."""

    version: int
    purpose: str
    channel: str | None
    partner_id: str | None
    slices: list[str]
    granted: bool
    source: str
    text_version: str | None
    actor: str | None
    changed_at: Utc


class ConsentReceipt(BaseModel):
    """Every consent of a customer and the full history behind them."""

    customer_id: str
    version: int
    consents: list[ConsentPublic]
    history: list[ConsentHistoryEntry]


# --- what the log tells profile ----------------------------------------------------


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


class Order(SQLModel, table=True):
    """A completed order, the ground truth of metrics and trends."""

    __tablename__ = "profile_orders"

    order_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=64, index=True)
    subject_id: str = Field(max_length=64, index=True)
    revenue: Decimal = Field(sa_type=MONEY)
    cost: Decimal | None = Field(default=None, sa_type=MONEY)  # type: ignore[call-overload]
    currency: str = Field(default="EUR", max_length=8)
    items: int = 1
    occurred_at: datetime = Field(sa_type=TZ, index=True)


class CustomerMetrics(SQLModel, table=True):
    """Per-customer aggregates, recomputed from the orders on every change."""

    __tablename__ = "profile_customer_metrics"

    customer_id: str = Field(primary_key=True, max_length=64)
    orders: int = 0
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    profit: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    first_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    # Derived from the columns above by rapport_events.value, kept for search by tier.
    lifetime_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    tier: str = Field(default="none", max_length=16, index=True)
    loyalty_points: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class RfmScores(BaseModel):
    """Scores 1-5 by fixed cut-offs (rapport_events.value), 5 best; null without orders."""

    recency: int | None
    frequency: int | None
    monetary: int | None
    combined: str | None


class MetricsPublic(BaseModel):
    """A customer's metrics as they stand now."""

    customer_id: str
    orders: int
    revenue: Decimal
    average_order_value: Decimal | None
    average_order: Decimal | None  # the same as average_order_value, kept for older clients
    first_order_at: Utc | None
    last_order_at: Utc | None
    recency_days: int | None
    rfm: RfmScores
    lifetime_value: Decimal
    profit: Decimal
    tier: str
    profitability_tier: str  # the same as tier, kept for older clients
    loyalty_points: int


class SegmentMembership(SQLModel, table=True):
    """The campaign segments a customer is in, from segment.entered / exited."""

    __tablename__ = "profile_segment_members"

    customer_id: str = Field(primary_key=True, max_length=64)
    segment_id: str = Field(primary_key=True, max_length=64)
    segment_name: str = Field(max_length=200)
    entered_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


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


class TrackedMessage(SQLModel, table=True):
    """A tracking call's messageId, so a retried call is applied once."""

    __tablename__ = "profile_tracked_messages"

    message_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=64, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


# --- forecasts ---------------------------------------------------------------------


class ForecastModel(SQLModel, table=True):
    """The last fitted forecast of one metric, interval and window, so a process that
    starts answers from it at once (with its age) while it fits a fresh one."""

    __tablename__ = "profile_forecast_models"

    key: str = Field(primary_key=True, max_length=128)  # forecasts.key_text
    reply: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    fitted_at: datetime = Field(sa_type=TZ)


# --- accounts (Segment group calls) -----------------------------------------------


class Account(SQLModel, table=True):
    """A company or team customers belong to: the `groupId` of a group call and its traits.

    An account is not a person's data: it stays when a member is erased (their link goes).
    """

    __tablename__ = "profile_accounts"

    id: str = Field(primary_key=True, max_length=255)
    name: str | None = Field(default=None, max_length=200)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class AccountMember(SQLModel, table=True):
    """A customer (or a visitor not identified yet) belongs to an account."""

    __tablename__ = "profile_account_members"

    customer_id: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=255, index=True)
    joined_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


# --- erasure -----------------------------------------------------------------------


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
