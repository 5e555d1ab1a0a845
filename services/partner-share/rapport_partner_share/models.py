"""Partner-share's tables and the request and reply schemas around them.

Personal data lives in one place only: `SharedSlice`, one row per customer,
partner and consented slice, deleted the moment the consent goes. Everything
else is keys, pseudonyms, consent bookkeeping and the audit ledger.
"""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    field_validator,
)
from pydantic import (
    Field as PydanticField,
)
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, FreeJson, SaneDatetime
from rapport_events.types import Slice
from rapport_partner_share.security import SHA256_HEX


def new_id() -> str:
    return str(uuid.uuid4())


def _utc(value: datetime) -> datetime:
    # SQLite returns datetimes without their zone; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def _when(nullable: bool = False) -> Any:
    column = Column(DateTime(timezone=True), nullable=nullable)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def _json() -> Any:
    return Field(sa_column=Column(JSON, nullable=False))


# --- tables ---------------------------------------------------------------------


class KnownCustomer(SQLModel, table=True):
    """A customer partner-share has heard of: an id and a date, no personal data."""

    __tablename__ = "partner_known_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    registered_at: datetime = _when()


class Partner(SQLModel, table=True):
    """A collaborating company: what it may receive, for which purposes, and how to reach it."""

    __tablename__ = "partner_share_partners"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    industry: str = Field(max_length=100)
    slices: list[str] = _json()
    purposes: list[str] = _json()
    webhook_url: str | None = Field(default=None, max_length=2048)
    # Kept because signing needs it; shown once at registration and never again.
    webhook_secret: str = Field(max_length=128)
    # Key of the per-partner pseudonyms; never leaves the service.
    ref_key: str = Field(max_length=64)
    rate_limit_per_second: float
    rate_limit_burst: int
    created_at: datetime = _when()
    deleted_at: datetime | None = _when(nullable=True)


class RateLimitState(SQLModel, table=True):
    """A partner's rate-limit allowance, shared by every replica (see `ratelimit`)."""

    __tablename__ = "partner_share_rate_limits"

    partner_id: str = Field(primary_key=True, max_length=64)
    # Theoretical arrival time of the next request, in seconds of the database's clock.
    tat: float


class PartnerApiKey(SQLModel, table=True):
    """One API key of a partner, stored as its SHA-256 only."""

    __tablename__ = "partner_share_api_keys"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    partner_id: str = Field(
        sa_column=Column(
            String(64), ForeignKey("partner_share_partners.id"), nullable=False, index=True
        )
    )
    key_hash: str = Field(max_length=64, unique=True)
    hint: str = Field(max_length=16)
    created_at: datetime = _when()
    revoked_at: datetime | None = _when(nullable=True)


class PartnerConsent(SQLModel, table=True):
    """Where a customer's partner_sharing consent for one partner stands.

    The row outlives a revocation (granted=False, no slices) so that a late,
    older grant cannot bring the sharing back: only a newer version counts.
    """

    __tablename__ = "partner_share_consents"
    __table_args__ = (
        UniqueConstraint("partner_id", "ref", name="uq_partner_share_consents_ref"),
        Index("ix_partner_share_consents_feed", "partner_id", "changed_at", "customer_id"),
    )

    customer_id: str = Field(primary_key=True, max_length=64)
    partner_id: str = Field(primary_key=True, max_length=64)
    ref: str = Field(max_length=64)
    granted: bool = False
    slices: list[str] = _json()
    version: int = 0
    granted_at: datetime | None = _when(nullable=True)
    changed_at: datetime = _when()
    # Profile-backed slices are fetched after the consent commits; fill_token
    # changes whenever a fetch in flight may have become stale.
    fill_pending: bool = False
    fill_token: int = 0
    fill_attempts: int = 0
    fill_next_at: datetime | None = _when(nullable=True)


class SharedSlice(SQLModel, table=True):
    """One consented slice of one customer for one partner: the only personal data here."""

    __tablename__ = "partner_share_slices"

    customer_id: str = Field(primary_key=True, max_length=64)
    partner_id: str = Field(primary_key=True, max_length=64)
    slice: str = Field(primary_key=True, max_length=32)
    data: dict[str, Any] = _json()
    updated_at: datetime = _when()


class MatchKey(SQLModel, table=True):
    """SHA-256 of a consented e-mail or phone, so a partner's hashes can be matched."""

    __tablename__ = "partner_share_match_keys"

    partner_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=8)
    digest: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)


class Disclosure(SQLModel, table=True):
    """One disclosure to a partner: the append-only audit ledger.

    It names the customer only through pseudonyms: the partner's ref, and `subject`, a
    keyed one-way pseudonym (`security.subject_pseudonym`) a privacy officer holding the
    id can look up after erasure. The link to the customer id sits in
    `DisclosureSubject`, which erasure removes, so the ledger itself never needs an
    update or a delete. Entries written before `subject` existed have none.
    """

    __tablename__ = "partner_share_disclosures"

    id: int | None = Field(default=None, sa_column=Column(ROW_ID, primary_key=True))
    event_id: str = Field(max_length=64, unique=True)
    partner_id: str = Field(max_length=64, index=True)
    partner_name: str = Field(max_length=200)
    partner_ref: str = Field(max_length=64)
    slices: list[str] = _json()
    fields: list[str] = _json()
    purpose: str = Field(max_length=64)
    consent_version: int | None = None
    request_id: str = Field(max_length=128)
    disclosed_at: datetime = _when()
    subject: str | None = Field(default=None, max_length=64, index=True)


class DisclosureSubject(SQLModel, table=True):
    """Which customer a ledger entry was about; deleted at erasure, the entry stays."""

    __tablename__ = "partner_share_disclosure_subjects"

    disclosure_id: int = Field(
        sa_column=Column(ROW_ID, ForeignKey("partner_share_disclosures.id"), primary_key=True)
    )
    customer_id: str = Field(max_length=64, index=True)


class Notification(SQLModel, table=True):
    """A signed webhook telling a partner to delete data (GDPR Art. 19), and its acknowledgement."""

    __tablename__ = "partner_share_notifications"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    partner_id: str = Field(max_length=64, index=True)
    # Cleared at erasure; the partner's ref stays so the notice can still be delivered.
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    partner_ref: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    body: str = Field(
        sa_type=Text
    )  # the exact bytes signed and sent, so every retry carries the same signature
    created_at: datetime = _when()
    attempts: int = 0
    next_attempt_at: datetime | None = _when(nullable=True)
    delivered_at: datetime | None = _when(nullable=True)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    acknowledged_at: datetime | None = _when(nullable=True)
    acknowledged_via: str | None = Field(default=None, max_length=16)


class ErasedCustomer(SQLModel, table=True):
    """The tombstone of an erased customer: late events for this id are dropped."""

    __tablename__ = "partner_share_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = _when()


# --- admin API ------------------------------------------------------------------

PURPOSE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class KnownCustomerPublic(BaseModel):
    """A known customer as the admin API shows it."""

    customer_id: str
    known_since: UtcDatetime

    @classmethod
    def of(cls, customer: KnownCustomer) -> "KnownCustomerPublic":
        """The reply for one known customer."""
        return cls(customer_id=customer.customer_id, known_since=customer.registered_at)


class PartnerCreate(Checked):
    """What an operator sends to register a partner."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme Travel",
                    "industry": "travel",
                    "slices": ["contact", "demographics"],
                    "purposes": ["joint_offers"],
                    "webhook_url": "https://partner.example.com/rapport/notices",
                }
            ]
        },
    )

    name: str = PydanticField(min_length=1, max_length=200)
    industry: str = PydanticField(min_length=1, max_length=100)
    slices: list[Slice] = PydanticField(min_length=1, max_length=5)
    purposes: list[str] = PydanticField(min_length=1, max_length=20)
    webhook_url: AnyHttpUrl | None = None
    rate_limit_per_second: float | None = PydanticField(default=None, gt=0, le=10_000)
    rate_limit_burst: int | None = PydanticField(default=None, ge=1, le=100_000)

    @field_validator("name", "industry")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("slices")
    @classmethod
    def _distinct_slices(cls, value: list[Slice]) -> list[Slice]:
        return sorted(set(value))

    @field_validator("purposes")
    @classmethod
    def _purpose_names(cls, value: list[str]) -> list[str]:
        for purpose in value:
            if not PURPOSE.match(purpose):
                raise ValueError(f"purpose {purpose!r} must match {PURPOSE.pattern}")
        return list(dict.fromkeys(value))


class ApiKeyPublic(BaseModel):
    """An API key as listings show it: never the key itself."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    hint: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


class ApiKeyCreated(BaseModel):
    """A new API key; `api_key` is shown this once."""

    id: str
    api_key: str
    hint: str
    created_at: UtcDatetime


class PartnerPublic(BaseModel):
    """A partner as the admin API shows it (no secrets)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    industry: str
    slices: list[str]
    purposes: list[str]
    webhook_url: str | None
    rate_limit_per_second: float
    rate_limit_burst: int
    created_at: UtcDatetime
    deleted_at: UtcDatetime | None
    keys: list[ApiKeyPublic] = []

    @classmethod
    def of(cls, partner: Partner, keys: list[PartnerApiKey]) -> "PartnerPublic":
        return cls.model_validate(
            {
                **partner.model_dump(exclude={"webhook_secret", "ref_key"}),
                "keys": [ApiKeyPublic.model_validate(key) for key in keys],
            }
        )


class PartnerCreated(PartnerPublic):
    """A newly registered partner; `api_key` and `webhook_secret` are shown this once."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "8b0e4b8a-1f7e-4f3e-9d7a-5c2f1e0b6a44",
                    "name": "Acme Travel",
                    "industry": "travel",
                    "slices": ["contact", "demographics"],
                    "purposes": ["joint_offers"],
                    "webhook_url": "https://partner.example.com/rapport/notices",
                    "rate_limit_per_second": 50.0,
                    "rate_limit_burst": 100,
                    "created_at": "2026-03-01T10:00:00Z",
                    "deleted_at": None,
                    "keys": [
                        {
                            "id": "e2a7c1d4-6b3f-4c58-a0e9-7d1f2b3c4d5e",
                            "hint": "rpk_Xq3Z",
                            "created_at": "2026-03-01T10:00:00Z",
                            "revoked_at": None,
                        }
                    ],
                    "api_key": "rpk_Xq3Z9vLw0bTn4sYk2RfHc8mJdP6aQeUi1oGxV7yNzKw",
                    "webhook_secret": "whsec_p4Jt8sWc2mYq6nHf0vKd3bLx9zRg7aTe5uNi1oPyC",
                }
            ]
        },
    )

    api_key: str
    webhook_secret: str


class PartnerList(BaseModel):
    partners: list[PartnerPublic]


class DisclosurePublic(BaseModel):
    """One entry of the audit ledger."""

    id: str
    partner_id: str
    partner_name: str
    customer_id: str | None
    partner_ref: str
    slices: list[str]
    fields: list[str]
    purpose: str
    consent_version: int | None
    request_id: str
    disclosed_at: UtcDatetime

    @classmethod
    def of(cls, disclosure: Disclosure, customer_id: str | None) -> "DisclosurePublic":
        return cls.model_validate(
            {**disclosure.model_dump(exclude={"id"}), "id": disclosure.event_id}
            | {"customer_id": customer_id}
        )


class DisclosurePage(BaseModel):
    disclosures: list[DisclosurePublic]
    next_cursor: str | None


class ErasureNoticeStatus(BaseModel):
    """The erasure notice a partner was sent about the subject, and whether it acted on it."""

    id: str
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    acknowledged: bool
    acknowledged_at: UtcDatetime | None
    acknowledged_via: str | None

    @classmethod
    def of(cls, notification: "Notification") -> "ErasureNoticeStatus":
        return cls(
            id=notification.id,
            created_at=notification.created_at,
            delivered_at=notification.delivered_at,
            acknowledged=notification.acknowledged_at is not None,
            acknowledged_at=notification.acknowledged_at,
            acknowledged_via=notification.acknowledged_via,
        )


class SubjectDisclosure(BaseModel):
    """One ledger entry about a subject, with no personal data: who received which slices,
    when, under which consent version, and the erasure notice that partner was sent."""

    id: str
    partner_id: str
    partner_name: str
    slices: list[str]
    fields: list[str]
    purpose: str
    consent_version: int | None
    disclosed_at: UtcDatetime
    erasure_notice: ErasureNoticeStatus | None


class SubjectLedger(BaseModel):
    """What the disclosure ledger holds under one subject pseudonym (GDPR Art. 19, 5(2))."""

    subject: str
    disclosures: list[SubjectDisclosure]
    next_cursor: str | None


class NotificationPublic(BaseModel):
    """A deletion notice to a partner, its delivery and its acknowledgement."""

    id: str
    partner_id: str
    ref: str
    type: str
    payload: dict[str, Any]
    created_at: UtcDatetime
    attempts: int
    delivered_at: UtcDatetime | None
    last_status: int | None
    last_error: str | None
    acknowledged_at: UtcDatetime | None
    acknowledged_via: str | None

    @classmethod
    def of(cls, notification: Notification) -> "NotificationPublic":
        return cls(
            id=notification.id,
            partner_id=notification.partner_id,
            ref=notification.partner_ref,
            type=notification.kind,
            payload=json.loads(notification.body),
            created_at=notification.created_at,
            attempts=notification.attempts,
            delivered_at=notification.delivered_at,
            last_status=notification.last_status,
            last_error=notification.last_error,
            acknowledged_at=notification.acknowledged_at,
            acknowledged_via=notification.acknowledged_via,
        )


class NotificationList(BaseModel):
    notifications: list[NotificationPublic]


class CustomerExport(BaseModel):
    """Everything partner-share holds about one customer (GDPR access)."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


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


class AcknowledgementCreate(Checked):
    """The partner confirms it acted on a deletion notice."""

    model_config = ConfigDict(extra="forbid")

    notification_id: str = PydanticField(min_length=1, max_length=64)
