"""Who the customer is, as the log last told support (projected from profile's events), and
the support context a rep sees."""

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_support.mentions.models import MentionSummary
from rapport_support.products.models import ProductPublic
from rapport_support.shared import TZ, Public, UtcDatetime
from rapport_support.tickets.models import TicketSummary


def handle_key(handle: str) -> str:
    """Handles compare without case and without a leading "@"."""
    return handle.strip().lstrip("@").lower()


HandleKey = tuple[str, str]


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


class ErasedCustomer(SQLModel, table=True):
    """The only trace of an erased customer: later events about them are dropped."""

    __tablename__ = "support_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class ConsentPublic(Public):
    purpose: str
    channel: str | None
    partner_id: str | None
    slices: list[str]
    granted: bool
    version: int
    changed_at: UtcDatetime


class CustomerSummary(Public):
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


class SupportContext(BaseModel):
    """Everything a rep sees when a customer calls, from support's own projection."""

    customer_id: str
    customer: CustomerSummary | None
    products: list[ProductPublic] = []
    tickets: list[TicketSummary] = []
    open_tickets: int = 0
    mentions: list[MentionSummary] = []
