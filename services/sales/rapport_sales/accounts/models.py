"""Accounts (companies) and their contacts: the tables, the bodies of the accounts routes,
and an account's timeline."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from rapport_events.limits import Checked, Line
from rapport_sales.shared import TZ, Name, Owner, Reply, new_id

Size = Literal["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"]
DOMAIN_PATTERN = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


# --- tables ----------------------------------------------------------------------------------


class SalesAccount(SQLModel, table=True):
    """A company; `external_id` is the Segment `groupId` that named it, if any."""

    __tablename__ = "sales_accounts"
    __table_args__ = (Index("ix_sales_accounts_listing", "created_at", "id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    external_id: str | None = Field(default=None, max_length=255, unique=True)
    name: str = Field(max_length=200)
    domain: str | None = Field(default=None, max_length=253, index=True)
    industry: str | None = Field(default=None, max_length=100)
    size: str | None = Field(default=None, max_length=32)
    owner: str | None = Field(default=None, max_length=128, index=True)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesContact(SQLModel, table=True):
    """A customer is a contact of an account."""

    __tablename__ = "sales_contacts"

    account_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)
    source: str = Field(max_length=16)
    role: str | None = Field(default=None, max_length=100)
    linked_at: datetime = Field(sa_column=Column(TZ, nullable=False))


# --- request and reply bodies ----------------------------------------------------------------


class AccountCreate(Checked):
    """A company to sell to."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme Coffee",
                    "domain": "acme.example",
                    "industry": "hospitality",
                    "size": "51-200",
                    "owner": "rep:grace",
                }
            ]
        }
    )

    name: Name
    domain: Annotated[str | None, PydanticField(max_length=253)] = None
    industry: Annotated[Line | None, PydanticField(max_length=100)] = None
    size: Size | None = None
    owner: Owner | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not re.fullmatch(DOMAIN_PATTERN, value):
            raise ValueError("domain must be a host name such as acme.example")
        return value


class AccountUpdate(AccountCreate):
    """The fields to change; the ones left out stay as they are."""

    name: Name | None = None  # type: ignore[assignment]


class ContactLink(Checked):
    """How the customer relates to the account."""

    role: Annotated[Line | None, PydanticField(max_length=100)] = None


class ContactPublic(Reply):
    customer_id: str
    source: str
    role: str | None
    linked_at: datetime
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class AccountPublic(Reply):
    id: str
    external_id: str | None
    name: str
    domain: str | None
    industry: str | None
    size: str | None
    owner: str | None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    contacts: list[ContactPublic] = PydanticField(default_factory=list)


class TimelineItem(BaseModel):
    """One entry of an account's timeline: its own activity or a contact's event."""

    at: datetime
    source: Literal["sales", "profile"]
    type: str
    customer_id: str | None = None
    data: dict[str, Any]


class AccountTimeline(BaseModel):
    """Newest first; `complete` is False when a contact's timeline could not be had."""

    items: list[TimelineItem]
    complete: bool
