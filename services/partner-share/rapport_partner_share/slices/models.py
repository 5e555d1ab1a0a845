"""The shared slices (the only personal data partner-share holds) and the match keys of
consented contacts; what a partner sends and receives on the partner API.

Personal data lives in one place only: `SharedSlice`, one row per customer, partner and
consented slice, deleted the moment the consent goes.
"""

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from rapport_events.limits import Checked, FreeJson, SaneDatetime
from rapport_partner_share.security import SHA256_HEX
from rapport_partner_share.shared import UtcDatetime, json_column, when


class SharedSlice(SQLModel, table=True):
    """One consented slice of one customer for one partner: the only personal data here."""

    __tablename__ = "partner_share_slices"

    customer_id: str = Field(primary_key=True, max_length=64)
    partner_id: str = Field(primary_key=True, max_length=64)
    slice: str = Field(primary_key=True, max_length=32)
    data: dict[str, Any] = json_column()
    updated_at: datetime = when()


class MatchKey(SQLModel, table=True):
    """SHA-256 of a consented e-mail or phone, so a partner's hashes can be matched."""

    __tablename__ = "partner_share_match_keys"

    partner_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=8)
    digest: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)


# --- partner API ----------------------------------------------------------------


class PartnerCustomer(BaseModel):
    """A customer as a partner sees it: a pseudonym and the consented slices only."""

    ref: str
    slices: dict[str, dict[str, Any]]
    changed_at: UtcDatetime


class PartnerCustomerPage(BaseModel):
    customers: list[PartnerCustomer]
    next_cursor: str | None


def _digests(values: list[str]) -> list[str]:
    lowered = [value.strip().lower() for value in values]
    for value in lowered:
        if not SHA256_HEX.match(value):
            raise ValueError("each entry must be a SHA-256 digest: 64 hexadecimal characters")
    return list(dict.fromkeys(lowered))


class HashedIdentifiers(Checked):
    """SHA-256 of normalised e-mails (trimmed, lower-case) and phones (E.164)."""

    model_config = ConfigDict(extra="forbid")

    emails: list[str] = PydanticField(default_factory=list, max_length=1000)
    phones: list[str] = PydanticField(default_factory=list, max_length=1000)

    @field_validator("emails", "phones")
    @classmethod
    def _sha256(cls, value: list[str]) -> list[str]:
        return _digests(value)

    def total(self) -> int:
        return len(self.emails) + len(self.phones)


class Match(BaseModel):
    kind: str
    hash: str
    ref: str


class MatchReply(BaseModel):
    """Refs of the submitted hashes that belong to consenting customers; others are absent."""

    matches: list[Match]


class SegmentOverlap(BaseModel):
    segment_id: str
    name: str
    count: int


class OverlapReply(BaseModel):
    """How many submitted hashes are consenting customers; counts under k are withheld."""

    submitted: int
    matched: int | None
    suppressed: bool
    k_threshold: int
    segments: list[SegmentOverlap]


EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,127}$")
MAX_PROPERTIES_BYTES = 8192


class ContributedEvent(Checked):
    """An interaction a partner observed for a customer it knows by ref."""

    model_config = ConfigDict(extra="forbid")

    ref: str = PydanticField(min_length=1, max_length=64)
    name: str = PydanticField(min_length=1, max_length=128)
    properties: FreeJson = PydanticField(default_factory=dict, max_length=50)
    occurred_at: SaneDatetime | None = None

    @field_validator("name")
    @classmethod
    def _event_name(cls, value: str) -> str:
        if not EVENT_NAME.match(value):
            raise ValueError(f"name must match {EVENT_NAME.pattern}")
        return value

    @field_validator("properties")
    @classmethod
    def _small_properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties must be at most {MAX_PROPERTIES_BYTES} bytes of JSON")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("occurred_at needs a time zone, like 2025-01-31T12:00:00Z")
        return value


class ContributionAccepted(BaseModel):
    event_id: str
    ref: str
    name: str
    occurred_at: UtcDatetime
