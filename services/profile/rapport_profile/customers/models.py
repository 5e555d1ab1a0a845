"""Customers, their segments and accounts (Segment group calls), and idempotent requests:
tables and the request and reply schemas around them."""

import re
from datetime import date, datetime
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    field_validator,
    model_validator,
)
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from rapport_events.base import Event, utcnow
from rapport_events.limits import Checked, StringMap, sane_date
from rapport_events.types import CustomerRegistered
from rapport_profile.shared import TZ, Utc, new_id

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class CustomerFields(SQLModel):
    """A customer's attributes and their limits, each optional as in a change."""

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


class CustomerBase(CustomerFields):
    # Required to register; a redeclared field keeps its place in the schema.
    email: EmailStr = Field(max_length=320)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)


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


class ContactChecks(BaseModel):
    """How a registration and a change check and normalise the contact fields they hold."""

    @field_validator("email", check_fields=False)
    @classmethod
    def _lowercase_email(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else value

    @field_validator("phone", check_fields=False)
    @classmethod
    def _e164_phone(cls, value: str | None) -> str | None:
        return _e164(value)

    @field_validator("birth_date", check_fields=False)
    @classmethod
    def _birth_date_in_past(cls, value: date | None) -> date | None:
        return _past(value)

    @field_validator("country", check_fields=False)
    @classmethod
    def _upper_country(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class CustomerCreate(CustomerBase, Checked, ContactChecks):
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


REQUIRED_ON_PATCH = ("email", "first_name", "last_name")


class CustomerUpdate(CustomerFields, Checked, ContactChecks):
    """A partial change; fields left out stay as they are, null clears an optional one."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    social_handles: StringMap | None = None
    external_ids: StringMap | None = None

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


# What customer.registered carries beyond every event's fields: the event says which.
EVENT_FIELDS = tuple(
    name for name in CustomerRegistered.model_fields if name not in Event.model_fields
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


class SegmentMembership(SQLModel, table=True):
    """The campaign segments a customer is in, from segment.entered / exited."""

    __tablename__ = "profile_segment_members"

    customer_id: str = Field(primary_key=True, max_length=64)
    segment_id: str = Field(primary_key=True, max_length=64)
    segment_name: str = Field(max_length=200)
    entered_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


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
