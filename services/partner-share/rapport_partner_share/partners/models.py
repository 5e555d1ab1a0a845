"""Partners, their API keys and their rate-limit allowance; the registration and the
replies that show a partner (never its secrets but once)."""

import re
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from rapport_events.limits import Checked
from rapport_events.types import Slice
from rapport_partner_share.shared import UtcDatetime, json_column, new_id, when


class Partner(SQLModel, table=True):
    """A collaborating company: what it may receive, for which purposes, and how to reach it."""

    __tablename__ = "partner_share_partners"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    industry: str = Field(max_length=100)
    slices: list[str] = json_column()
    purposes: list[str] = json_column()
    webhook_url: str | None = Field(default=None, max_length=2048)
    # Kept because signing needs it; shown once at registration and never again.
    webhook_secret: str = Field(max_length=128)
    # Key of the per-partner pseudonyms; never leaves the service.
    ref_key: str = Field(max_length=64)
    rate_limit_per_second: float
    rate_limit_burst: int
    created_at: datetime = when()
    deleted_at: datetime | None = when(nullable=True)


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
    created_at: datetime = when()
    revoked_at: datetime | None = when(nullable=True)


# --- admin API ------------------------------------------------------------------

PURPOSE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


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
