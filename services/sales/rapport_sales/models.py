"""Sales' tables: accounts and their contacts, pipelines, opportunities, activities.

Personal data is kept to what selling needs: the contact's customer id, name and
e-mail address (to link logged e-mails). An erasure removes all of it; accounts and
opportunities, which belong to the company, survive without the person.
"""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Index, Numeric, Text
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID

TZ = DateTime(timezone=True)
MONEY = Numeric(14, 2)
PROBABILITY = Numeric(5, 4)


def new_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class SalesCustomer(SQLModel, table=True):
    """A customer profile knows, with what sales needs to find them: name and e-mail."""

    __tablename__ = "sales_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    email: str | None = Field(default=None, max_length=320, index=True)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    # Where the customer came from, for an opportunity's source: profile's acquisition
    # channel, and the campaign of their latest click.
    acquisition_channel: str | None = Field(default=None, max_length=100)
    last_campaign_id: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesErasedCustomer(SQLModel, table=True):
    """The tombstone of an erased customer: the id alone, so late events about them are dropped."""

    __tablename__ = "sales_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(sa_column=Column(TZ, nullable=False))


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


class SalesPipeline(SQLModel, table=True):
    """A sales process: its ordered stages are SalesStage rows."""

    __tablename__ = "sales_pipelines"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesStage(SQLModel, table=True):
    """One stage of a pipeline: its place, win probability and whether it closes the deal."""

    __tablename__ = "sales_stages"

    pipeline_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    position: int
    probability: Decimal = Field(sa_type=PROBABILITY)
    outcome: str = Field(default="open", max_length=8)  # open, won or lost


class SalesOpportunity(SQLModel, table=True):
    """A deal in a pipeline; `customer_id` is its primary contact (None once erased)."""

    __tablename__ = "sales_opportunities"
    __table_args__ = (
        Index("ix_sales_opportunities_listing", "created_at", "id"),
        # Covers the pipeline report: it is answered from the index alone.
        Index(
            "ix_sales_opportunities_pipeline",
            "pipeline_id",
            "status",
            "stage",
            "owner",
            "currency",
            "amount",
            "probability",
        ),
        Index("ix_sales_opportunities_close", "status", "expected_close_date"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    pipeline_id: str = Field(max_length=64)
    account_id: str = Field(max_length=64, index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=200)
    owner: str | None = Field(default=None, max_length=128, index=True)
    amount: Decimal = Field(sa_type=MONEY)
    currency: str = Field(max_length=3)
    expected_close_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    stage: str = Field(max_length=64)
    probability: Decimal = Field(sa_type=PROBABILITY)
    status: str = Field(default="open", max_length=8)  # open, won or lost
    source: str | None = Field(default=None, max_length=200)
    products: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    lost_reason: str | None = Field(default=None, max_length=500)
    order_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))


class SalesOpportunityContact(SQLModel, table=True):
    """A contact involved in an opportunity."""

    __tablename__ = "sales_opportunity_contacts"

    opportunity_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)


class SalesStageChange(SQLModel, table=True):
    """The history of an opportunity's stages, for cycle times and the timeline."""

    __tablename__ = "sales_stage_changes"

    id: int | None = Field(default=None, sa_type=ROW_ID, primary_key=True)
    opportunity_id: str = Field(max_length=64, index=True)
    from_stage: str | None = Field(default=None, max_length=64)
    to_stage: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesActivity(SQLModel, table=True):
    """A task, meeting, call, note or logged e-mail, on an account and/or its contacts."""

    __tablename__ = "sales_activities"
    __table_args__ = (
        Index("ix_sales_activities_account", "account_id", "occurred_at"),
        Index("ix_sales_activities_tasks", "kind", "owner", "done_at", "due_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    account_id: str | None = Field(default=None, max_length=64)
    subject: str = Field(max_length=500)
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    owner: str | None = Field(default=None, max_length=128)
    occurred_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    due_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    done_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    starts_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    ends_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))
    location: str | None = Field(default=None, max_length=500)
    # Meeting attendees and e-mail participants by address; erasure removes the person's.
    addresses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    message_id: str | None = Field(default=None, max_length=998)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesActivityContact(SQLModel, table=True):
    """A contact an activity is about (an attendee, a correspondent, the person called)."""

    __tablename__ = "sales_activity_contacts"
    activity_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)


class SalesDocument(SQLModel, table=True):
    """A file attached to an account or contacts; the bytes are on disk under its id."""

    __tablename__ = "sales_documents"

    id: str = Field(primary_key=True, max_length=64)  # the activity's id
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=127)
    size: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
