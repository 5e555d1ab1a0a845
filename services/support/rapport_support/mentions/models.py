"""Mentions on social platforms, the replies to them and each delivery attempt, and the
request and reply schemas around them."""

import re
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, computed_field, field_validator
from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, SaneDatetime
from rapport_support.shared import TZ, Public, UtcDatetime, aware, new_id

Sentiment = Literal["positive", "neutral", "negative"]
MentionKind = Literal["complaint", "question", "praise", "other"]
MentionStatus = Literal["new", "ticketed", "replied", "closed"]
ReplyStatus = Literal["pending", "sent", "failed"]


PLATFORM = re.compile(r"^[A-Za-z0-9_.-]+$")
WEB_ADDRESS = re.compile(r"^https?://\S+$")


# --- tables --------------------------------------------------------------------------------------


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


# --- request and reply schemas -------------------------------------------------------------------


class MentionSummary(Public):
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


class AttemptPublic(Public):
    attempt: int
    attempted_at: UtcDatetime
    status_code: int | None
    error: str | None
    duration_ms: float


class ReplyPublic(Public):
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


class MentionPublic(Public):
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
