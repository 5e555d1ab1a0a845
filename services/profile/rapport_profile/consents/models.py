"""Consents, their history and receipts: tables and schemas."""

from datetime import datetime
from typing import Self

from pydantic import (
    BaseModel,
    ConfigDict,
    model_validator,
)
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked
from rapport_events.types import Channel, Purpose, Slice
from rapport_profile.shared import TZ, Utc


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
