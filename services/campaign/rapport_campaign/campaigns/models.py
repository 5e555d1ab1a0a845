"""Campaigns: the table, the content every campaign and journey carries, and the reports."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from rapport_campaign.shared import TZ, aware_or_none, new_id
from rapport_events.base import utcnow
from rapport_events.limits import Checked, SaneDatetime
from rapport_events.types import Channel

# The call-to-action URL is stored in a column of this size; a longer one would not fit.
MAX_LINK = 2048
CampaignKind = Literal["broadcast", "journey"]
Trigger = Literal["welcome", "abandoned_cart", "re_engagement"]
AttributionModel = Literal["last_touch", "first_touch"]


class Campaign(SQLModel, table=True):
    """A broadcast to an audience, or a journey that a trigger sends one customer at a time."""

    __tablename__ = "campaign_campaigns"

    id: str = Field(default_factory=lambda: new_id("cmp"), primary_key=True, max_length=64)
    kind: str = Field(default="broadcast", max_length=16)
    name: str = Field(max_length=200)
    channel: str = Field(max_length=16)
    status: str = Field(default="draft", max_length=16)
    segment_id: str | None = Field(default=None, max_length=64, index=True)
    customer_ids: list[str] | None = Field(default=None, sa_column=Column(JSON))
    trigger: str | None = Field(default=None, max_length=32)
    trigger_config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    active: bool = True
    variants: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    link: str | None = Field(default=None, max_length=MAX_LINK)
    offer_prefix: str | None = Field(default=None, max_length=32)
    ab_test: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    winner: str | None = Field(default=None, max_length=64)
    frequency_cap: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    attribution_window_hours: float | None = None
    scheduled_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    launched_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    decide_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    completed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Variant(BaseModel):
    """One version of the message; templates are sandboxed Jinja2."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(default="A", min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    subject: str | None = PydanticField(default=None, max_length=500)
    body: str = PydanticField(min_length=1, max_length=100_000)
    html: str | None = PydanticField(default=None, max_length=200_000)
    weight: int = PydanticField(default=1, ge=1, le=100)


CustomerId = Annotated[str, PydanticField(min_length=1, max_length=64)]


class Audience(BaseModel):
    """Who a broadcast goes to: a segment, or a list of customer ids."""

    model_config = ConfigDict(extra="forbid")

    segment_id: str | None = PydanticField(default=None, min_length=1, max_length=64)
    customer_ids: list[CustomerId] | None = PydanticField(
        default=None, min_length=1, max_length=10_000
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.segment_id is None) == (self.customer_ids is None):
            raise ValueError("give exactly one of segment_id or customer_ids")
        return self


class Offer(BaseModel):
    """A unique offer code per recipient: PREFIX-XXXXXXXX."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = PydanticField(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9]+$")


class AbTest(BaseModel):
    """Send the variants to a test share first; the rest get the winner by conversion."""

    model_config = ConfigDict(extra="forbid")

    test_fraction: float = PydanticField(gt=0, lt=1)
    decide_after_minutes: float = PydanticField(gt=0, le=60 * 24 * 30)


class FrequencyCap(BaseModel):
    """At most `max_messages` on this channel per customer within `per_hours`."""

    model_config = ConfigDict(extra="forbid")

    max_messages: int = PydanticField(ge=1, le=1000)
    per_hours: float = PydanticField(gt=0, le=24 * 365)


class MessageContent(Checked):
    """What every campaign and journey carries: channel, variants, link, offer, caps."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(min_length=1, max_length=200)
    channel: Channel
    variants: list[Variant] = PydanticField(min_length=1, max_length=10)
    link: AnyHttpUrl | None = PydanticField(
        default=None,
        description=f"Where the call to action leads (`{{{{ cta_url }}}}`), {MAX_LINK} chars max",
    )
    offer: Offer | None = None
    frequency_cap: FrequencyCap | None = None
    attribution_window_hours: float | None = PydanticField(default=None, gt=0, le=24 * 365)

    @field_validator("link")
    @classmethod
    def _link_fits(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and len(str(value)) > MAX_LINK:
            raise ValueError(f"link is at most {MAX_LINK} characters")
        return value

    @model_validator(mode="after")
    def _variants_fit_the_channel(self) -> Self:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.channel == "email" and any(not v.subject for v in self.variants):
            raise ValueError("an e-mail variant needs a subject")
        return self


class CampaignCreate(MessageContent):
    """A broadcast: content plus its audience, and optionally a schedule and an A/B test."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring sale",
                    "channel": "email",
                    "variants": [
                        {
                            "name": "A",
                            "subject": "{{ first_name }}, 20% off the X2",
                            "body": "Hello {{ first_name }}, the X2 is 20% off: {{ cta_url }}",
                            "weight": 1,
                        }
                    ],
                    "audience": {"segment_id": "seg_big_spenders"},
                    "link": "https://shop.example.com/x2",
                    "frequency_cap": {"max_messages": 2, "per_hours": 24},
                }
            ]
        },
    )

    audience: Audience
    schedule_at: SaneDatetime | None = None
    ab_test: AbTest | None = None

    @model_validator(mode="after")
    def _ab_test_needs_variants(self) -> Self:
        if self.ab_test is not None and len(self.variants) < 2:
            raise ValueError("an A/B test needs at least two variants")
        if self.schedule_at is not None and self.schedule_at.tzinfo is None:
            raise ValueError("schedule_at needs a time zone, like 2030-01-01T09:00:00Z")
        return self


class LaunchRequest(Checked):
    """Launch now, or at a later time."""

    model_config = ConfigDict(extra="forbid")

    at: SaneDatetime | None = None

    @field_validator("at")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("at needs a time zone, like 2030-01-01T09:00:00Z")
        return value


class CampaignPublic(BaseModel):
    """A campaign or journey as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    name: str
    channel: str
    status: str
    segment_id: str | None
    customer_ids: list[str] | None
    trigger: str | None
    trigger_config: dict[str, Any]
    active: bool
    variants: list[dict[str, Any]]
    link: str | None
    offer_prefix: str | None
    ab_test: dict[str, Any] | None
    winner: str | None
    frequency_cap: dict[str, Any] | None
    attribution_window_hours: float | None
    scheduled_at: datetime | None
    launched_at: datetime | None
    completed_at: datetime | None
    created_at: datetime

    @model_validator(mode="after")
    def _utc(self) -> Self:
        for name in ("scheduled_at", "launched_at", "completed_at", "created_at"):
            setattr(self, name, aware_or_none(getattr(self, name)))
        return self


class MessagePreview(BaseModel):
    """A campaign's message as one customer would get it (nothing sent or stored)."""

    campaign_id: str
    customer_id: str
    variant: str
    channel: str
    subject: str | None
    text: str
    html: str | None


class Counts(BaseModel):
    """The funnel of a campaign or of one variant."""

    targeted: int = 0
    held: int = 0
    pending: int = 0
    suppressed: int = 0
    capped: int = 0
    unreachable: int = 0
    failed: int = 0
    cancelled: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    redeemed: int = 0
    revenue: Decimal = Decimal(0)
    conversion_rate: float = 0.0


class VariantReport(Counts):
    variant: str


class CampaignReport(Counts):
    """Targeted, suppressed, sent, delivered, opened, clicked, converted, revenue, per variant."""

    campaign_id: str
    name: str
    status: str
    attribution_model: AttributionModel
    winner: str | None
    variants: list[VariantReport]


class ChannelRow(BaseModel):
    """Customers, buyers and revenue of one acquisition channel."""

    acquisition_channel: str
    customers: int
    buyers: int
    orders: int
    revenue: Decimal
    conversion_rate: float


class CampaignChannelRow(BaseModel):
    """Reach, conversions and attributed revenue of one campaign."""

    campaign_id: str
    name: str
    channel: str
    sent: int
    converted: int
    revenue: Decimal
    conversion_rate: float


class MessageChannelRow(BaseModel):
    """Reach, conversions and attributed revenue of one message channel (email, sms, ...)."""

    channel: str
    campaigns: int
    sent: int
    converted: int
    revenue: Decimal
    conversion_rate: float = 0.0


class ChannelAnalytics(BaseModel):
    """How customers heard of us, and which campaigns and message channels pay."""

    acquisition_channels: list[ChannelRow]
    campaigns: list[CampaignChannelRow]
    message_channels: list[MessageChannelRow]
