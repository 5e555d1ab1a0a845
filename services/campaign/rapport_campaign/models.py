"""Campaign's tables and the request and reply schemas around them."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Numeric
from sqlmodel import Field, SQLModel

from rapport_campaign.rules import Rule
from rapport_events.base import utcnow
from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, SaneDatetime
from rapport_events.types import Channel

TZ = DateTime(timezone=True)
MONEY = Numeric(14, 2)
# The call-to-action URL is stored in a column of this size; a longer one would not fit.
MAX_LINK = 2048


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; every stored timestamp is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


# --- the customer projection ------------------------------------------------------------


class AudienceMember(SQLModel, table=True):
    """A registered customer as campaigns see them: profile fields plus order metrics."""

    __tablename__ = "campaign_audience"
    __table_args__ = (Index("ix_campaign_audience_channel", "acquisition_channel"),)

    customer_id: str = Field(primary_key=True, max_length=64)
    email: str = Field(max_length=320)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    country: str | None = Field(default=None, max_length=64)
    acquisition_channel: str | None = Field(default=None, max_length=64)
    registered_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    phone: str | None = Field(default=None, max_length=32)
    birth_date: date | None = None
    gender: str | None = Field(default=None, max_length=32)
    income_band: str | None = Field(default=None, max_length=32)
    education: str | None = Field(default=None, max_length=64)
    city: str | None = Field(default=None, max_length=100)
    social_handles: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    # Profile's custom traits (customer.updated `changes.traits`), for `trait` rules.
    traits: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # Profile's customer value (customer.value.changed, rapport_events.value); points, NPS
    # and activity below are recomputed here from the activity rows.
    orders: int = 0
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    average_order_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    lifetime_value: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    tier: str = Field(default="none", max_length=16)
    first_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_order_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    last_active_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    loyalty_points: int = 0
    nps: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Activity(SQLModel, table=True):
    """One behavioural event of a customer; `event_id` makes a replay a no-op."""

    __tablename__ = "campaign_activity"
    __table_args__ = (
        Index("ix_campaign_activity_customer", "customer_id", "event_type", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    event_id: str = Field(max_length=64, unique=True)
    customer_id: str = Field(max_length=64)
    event_type: str = Field(max_length=64)
    ref: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    url: str | None = Field(default=None, max_length=2048)
    search_query: str | None = Field(default=None, max_length=512)
    coupon: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=128)
    value: Decimal | None = Field(default=None, sa_type=MONEY)
    currency: str | None = Field(default=None, max_length=8)
    balance: int | None = None
    occurred_at: datetime = Field(sa_type=TZ)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class ActivityItem(SQLModel, table=True):
    """One product line of an order or a cart."""

    __tablename__ = "campaign_activity_items"
    __table_args__ = (Index("ix_campaign_activity_items_product", "product_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    activity_id: int = Field(
        sa_column=Column(
            ROW_ID,
            ForeignKey("campaign_activity.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    customer_id: str = Field(max_length=64, index=True)
    product_id: str = Field(max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    price: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    quantity: int = 1


class ConsentState(SQLModel, table=True):
    """Marketing consent per channel, as profile announced it, plus our own suppression."""

    __tablename__ = "campaign_consents"

    customer_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=16)
    granted: bool = False
    version: int = 0
    source: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    # Set by an unsubscribe link: suppresses at once, until a newer grant arrives.
    suppressed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]


class Tombstone(SQLModel, table=True):
    """An erased customer: only the id is kept, so late events for it are dropped."""

    __tablename__ = "campaign_tombstones"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Alias(SQLModel, table=True):
    """A customer merged into another; late events for the old id go to the survivor."""

    __tablename__ = "campaign_aliases"

    merged_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(max_length=64, index=True)
    merged_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


# --- segments ------------------------------------------------------------------------------


class Segment(SQLModel, table=True):
    """A named rule; its members are kept current as events arrive."""

    __tablename__ = "campaign_segments"

    id: str = Field(default_factory=lambda: new_id("seg"), primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rule: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Which kinds of event can change membership; the others skip this segment.
    relevance: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    depends_on: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    time_dependent: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    refreshed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]


class SegmentMember(SQLModel, table=True):
    """One customer in one segment."""

    __tablename__ = "campaign_segment_members"
    __table_args__ = (Index("ix_campaign_segment_members_customer", "customer_id"),)

    segment_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    entered_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class SegmentCreate(Checked):
    """A segment to create: a name and a rule (see the rule language in the README)."""

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(min_length=1, max_length=200)
    description: str | None = PydanticField(default=None, max_length=2000)
    rule: Rule


class SegmentUpdate(Checked):
    """A new name or description; a rule never changes (create a new segment instead)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(default=None, min_length=1, max_length=200)
    description: str | None = PydanticField(default=None, max_length=2000)


class SegmentPreview(Checked):
    """A rule to count without saving it."""

    model_config = ConfigDict(extra="forbid")

    rule: Rule


class PreviewPublic(BaseModel):
    """How many customers a rule matches now, and a few of them."""

    count: int
    sample: list[str]
    time_dependent: bool


class SegmentPublic(BaseModel):
    """A segment as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    rule: dict[str, Any]
    time_dependent: bool
    depends_on: list[str]
    member_count: int = 0
    created_at: datetime
    refreshed_at: datetime | None

    @field_validator("created_at", "refreshed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _aware_or_none(value)


class MemberPublic(BaseModel):
    customer_id: str
    entered_at: datetime

    @field_validator("entered_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return aware(value)


class MemberPage(BaseModel):
    """One page of a segment's members, with the total count."""

    segment_id: str
    count: int
    members: list[MemberPublic]
    next_cursor: str | None


# --- campaigns and journeys ------------------------------------------------------------------

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


class Message(SQLModel, table=True):
    """One message of a campaign to one customer, from targeting to conversion."""

    __tablename__ = "campaign_messages"
    __table_args__ = (
        Index("ix_campaign_messages_due", "status", "due_at"),
        Index("ix_campaign_messages_customer", "customer_id", "channel", "sent_at"),
    )

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=64)
    campaign_id: str = Field(max_length=64, index=True)
    # Null once the customer is erased: the counts stay, the person goes.
    customer_id: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=16)
    variant: str | None = Field(default=None, max_length=64)
    # held (waiting for an A/B winner), pending, sending, sent, suppressed, capped,
    # unreachable, failed, cancelled
    status: str = Field(default="pending", max_length=16)
    reason: str | None = Field(default=None, max_length=500)
    offer_code: str | None = Field(default=None, max_length=64, unique=True)
    address: str | None = Field(default=None, max_length=320)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    sent_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    delivered_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    opened_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    clicked_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    redeemed_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    redeemed_order_id: str | None = Field(default=None, max_length=128)


class Click(SQLModel, table=True):
    """A click through a tracked link: the touch that attribution credits."""

    __tablename__ = "campaign_clicks"
    __table_args__ = (Index("ix_campaign_clicks_customer", "customer_id", "clicked_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    message_id: str = Field(max_length=64, index=True)
    campaign_id: str = Field(max_length=64)
    customer_id: str | None = Field(default=None, max_length=64)
    url: str = Field(max_length=2048)
    clicked_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Conversion(SQLModel, table=True):
    """An order credited to a campaign message."""

    __tablename__ = "campaign_conversions"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    order_key: str | None = Field(default=None, max_length=200, unique=True)
    order_id: str | None = Field(default=None, max_length=128)
    message_id: str = Field(max_length=64, index=True)
    campaign_id: str = Field(max_length=64, index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    variant: str | None = Field(default=None, max_length=64)
    revenue: Decimal = Field(default=Decimal(0), sa_type=MONEY)
    currency: str = Field(default="EUR", max_length=8)
    model: str = Field(max_length=16)
    touch: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TZ)


class JourneyState(SQLModel, table=True):
    """Where one customer is in one journey: the timer survives restarts."""

    __tablename__ = "campaign_journey_states"
    __table_args__ = (Index("ix_campaign_journey_states_due", "due_at"),)

    journey_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    cycle: int = 1
    fired_cycle: int = 0
    due_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Unsubscribe(SQLModel, table=True):
    """A click on an unsubscribe link, until profile has recorded the revocation."""

    __tablename__ = "campaign_unsubscribes"

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)
    message_id: str | None = Field(default=None, max_length=64)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    synced_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_error: str | None = Field(default=None, max_length=500)


# --- request and reply schemas ------------------------------------------------------------


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


class JourneyCreate(MessageContent):
    """A triggered journey: welcome, abandoned cart or re-engagement."""

    trigger: Trigger
    delay_minutes: float = PydanticField(
        default=0,
        ge=0,
        le=60 * 24 * 365,
        description="welcome: after registration; abandoned_cart: cart left without an order",
    )
    inactivity_days: float | None = PydanticField(
        default=None, gt=0, le=3650, description="re_engagement: days without any activity"
    )
    active: bool = True

    @model_validator(mode="after")
    def _trigger_settings(self) -> Self:
        if self.trigger == "re_engagement" and self.inactivity_days is None:
            raise ValueError("a re_engagement journey needs inactivity_days")
        if self.trigger != "re_engagement" and self.inactivity_days is not None:
            raise ValueError("inactivity_days is for re_engagement journeys only")
        if self.trigger == "abandoned_cart" and self.delay_minutes <= 0:
            raise ValueError("an abandoned_cart journey needs delay_minutes > 0")
        return self


class JourneyUpdate(Checked):
    """Pause or resume a journey."""

    model_config = ConfigDict(extra="forbid")

    active: bool


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
            setattr(self, name, _aware_or_none(getattr(self, name)))
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


class AudienceMemberPublic(BaseModel):
    """An audience member as the API shows it, with the metrics segments use."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    email: str
    first_name: str
    last_name: str
    country: str | None
    city: str | None = None
    acquisition_channel: str | None
    registered_at: datetime
    orders: int = 0
    revenue: Decimal = Decimal(0)
    average_order_value: Decimal = Decimal(0)
    lifetime_value: Decimal = Decimal(0)
    tier: str = "none"
    last_order_at: datetime | None = None
    last_active_at: datetime | None = None
    loyalty_points: int = 0
    traits: dict[str, Any] = {}
    segments: list[str] = []

    @model_validator(mode="after")
    def _utc(self) -> Self:
        for name in ("registered_at", "last_order_at", "last_active_at"):
            setattr(self, name, _aware_or_none(getattr(self, name)))
        return self


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


class CustomerExport(BaseModel):
    """Everything campaign holds about one customer."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]
