"""Tasks, meetings, calls, notes, logged e-mails and attached documents: the tables and the
bodies of the activities routes."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field as PydanticField
from pydantic import model_validator
from sqlalchemy import JSON, Column, Index
from sqlalchemy import Text as TextColumn
from sqlmodel import Field, SQLModel

from rapport_events.limits import Checked, Line, SaneDatetime, Text
from rapport_sales.shared import TZ, Id, Owner, Reply, new_id

# --- tables ----------------------------------------------------------------------------------


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
    body: str = Field(default="", sa_column=Column(TextColumn, nullable=False))
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


# --- request and reply bodies ----------------------------------------------------------------

ActivityKindIn = Literal["call", "note"]


class _ActivityIn(Checked):
    subject: Annotated[Line, PydanticField(min_length=1, max_length=500)]
    body: Annotated[Text, PydanticField(max_length=20_000)] = ""
    account_id: Id | None = None
    customer_ids: Annotated[list[Id], PydanticField(max_length=50)] = PydanticField(
        default_factory=list
    )
    owner: Owner | None = None

    @model_validator(mode="after")
    def _about_someone(self) -> "_ActivityIn":
        if self.account_id is None and not self.customer_ids:
            raise ValueError("an activity is about an account or contacts (customer_ids)")
        return self


class ActivityCreate(_ActivityIn):
    """A call or a note."""

    kind: ActivityKindIn
    occurred_at: SaneDatetime | None = None


class TaskCreate(_ActivityIn):
    """Something an owner must do by a date."""

    owner: Owner
    due_at: SaneDatetime


class TaskUpdate(Checked):
    """Mark a task done (or not), or move it."""

    done: bool | None = None
    due_at: SaneDatetime | None = None


class MeetingCreate(_ActivityIn):
    """A meeting; attendees by e-mail address (known customers are linked)."""

    starts_at: SaneDatetime
    ends_at: SaneDatetime
    location: Annotated[Line | None, PydanticField(max_length=500)] = None
    attendees: Annotated[
        list[Annotated[str, PydanticField(max_length=320)]], PydanticField(max_length=100)
    ] = PydanticField(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> "MeetingCreate":
        if self.ends_at <= self.starts_at:
            raise ValueError("a meeting ends after it starts")
        for address in self.attendees:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"attendee {address!r} is not an e-mail address")
        return self


class ActivityPublic(Reply):
    id: str
    kind: str
    account_id: str | None
    subject: str
    body: str
    owner: str | None
    occurred_at: datetime
    due_at: datetime | None
    done_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    location: str | None
    addresses: list[str]
    message_id: str | None
    created_at: datetime
    customer_ids: list[str] = PydanticField(default_factory=list)
