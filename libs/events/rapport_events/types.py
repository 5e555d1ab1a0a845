"""Every event type on the customer log, one frozen model each.

Long because it is the catalogue, and nothing else: one place to read every type.

A published type is never edited incompatibly: a breaking change is a new
`.vN` type plus an upcaster in `codec.UPCASTERS`.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rapport_events.base import Event

Purpose = Literal["marketing", "analytics", "partner_sharing"]
Channel = Literal["email", "sms", "push", "social"]
Slice = Literal["contact", "demographics", "purchase_summary", "segments", "loyalty"]
Currency = str


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class LineItem(_Part):
    """One product line of a cart or an order."""

    product_id: str = Field(min_length=1, max_length=128)
    # The shop's stock-keeping unit, when it differs from (or stands in for) product_id.
    sku: str | None = Field(default=None, max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    price: Decimal = Field(ge=0)
    quantity: int = Field(default=1, ge=1)
    serial_number: str | None = Field(default=None, max_length=128)


# --- customer -----------------------------------------------------------------


class CustomerRegistered(Event):
    """A customer became known to profile.

    v2: the contact and name fields are optional, as they read once the customer's data
    key is shredded (v1 events are read as v2 unchanged).
    """

    TYPE = "rapport.customer.registered.v2"
    PERSONAL = frozenset(
        {
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "gender",
            "income_band",
            "education",
            "city",
            "social_handles",
            "external_ids",
        }
    )
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: date | None = None
    gender: str | None = None
    income_band: str | None = None
    education: str | None = None
    country: str | None = None
    city: str | None = None
    acquisition_channel: str | None = None
    social_handles: dict[str, str] = Field(default_factory=dict)
    external_ids: dict[str, str] = Field(default_factory=dict)


class CustomerUpdated(Event):
    """Profile attributes changed; `changes` holds the new values by field name."""

    TYPE = "rapport.customer.updated.v1"
    PERSONAL = frozenset({"changes"})
    changes: dict[str, Any]


class CustomerMerged(Event):
    """A duplicate (`merged_customer_id`) was folded into `customer_id`."""

    TYPE = "rapport.customer.merged.v1"
    merged_customer_id: str
    reason: Literal["manual", "email", "external_id", "identify"]
    actor: str | None = None


class CustomerErased(Event):
    """GDPR erasure: every service deletes or anonymises this customer's data."""

    TYPE = "rapport.customer.erased.v1"
    requested_by: str | None = None
    reason: str | None = None


# --- consent ------------------------------------------------------------------


class _ConsentChange(Event):
    purpose: Purpose
    channel: Channel | None = None
    partner_id: str | None = None
    slices: tuple[Slice, ...] = ()
    source: str = Field(
        description="Where the customer said it: web_form, api, unsubscribe_link..."
    )
    text_version: str | None = Field(
        default=None, description="Version of the consent wording shown"
    )
    actor: str | None = None
    version: int = Field(ge=1, description="Monotonic version of this customer's consent record")


class ConsentGranted(_ConsentChange):
    """The customer agreed to a purpose (on a channel, or for a partner and slices)."""

    TYPE = "rapport.consent.granted.v1"


class ConsentRevoked(_ConsentChange):
    """The customer withdrew a consent; everyone must stop at once."""

    TYPE = "rapport.consent.revoked.v1"


# --- behaviour ----------------------------------------------------------------


class InteractionTracked(Event):
    """A page view, search, screen or custom track call."""

    TYPE = "rapport.interaction.tracked.v1"
    PERSONAL = frozenset({"properties", "url", "referrer", "search_query", "user_agent"})
    kind: Literal["page", "screen", "search", "track"]
    name: str | None = None
    anonymous_id: str | None = None
    message_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    url: str | None = None
    referrer: str | None = None
    search_query: str | None = None
    user_agent: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)


class CartUpdated(Event):
    """The customer's cart changed or was looked at."""

    TYPE = "rapport.cart.updated.v1"
    cart_id: str
    action: Literal["product_added", "product_removed", "cart_viewed", "checkout_started"]
    items: tuple[LineItem, ...] = ()
    value: Decimal = Field(default=Decimal(0), ge=0)
    currency: Currency = "EUR"


class OrderCompleted(Event):
    """A purchase at the point of sale or online."""

    TYPE = "rapport.order.completed.v1"
    order_id: str
    items: tuple[LineItem, ...] = Field(min_length=1)
    revenue: Decimal = Field(ge=0)
    currency: Currency = "EUR"
    discount: Decimal = Field(default=Decimal(0), ge=0)
    shipping: Decimal = Field(default=Decimal(0), ge=0)
    tax: Decimal = Field(default=Decimal(0), ge=0)
    coupon: str | None = None
    sales_channel: str | None = None
    cost: Decimal | None = Field(default=None, ge=0, description="Cost of goods, for profitability")


class CustomerValueChanged(Event):
    """Profile's values of a customer after their orders changed (rapport_events.value).

    Published once per customer per change, however many orders the change took in.
    The recency score is not here: it reads the clock, so each reader derives it from
    `last_order_at`.
    """

    TYPE = "rapport.customer.value.changed.v1"
    orders: int = Field(ge=0)
    revenue: Decimal
    average_order_value: Decimal | None = None
    profit: Decimal
    lifetime_value: Decimal
    tier: Literal["none", "bronze", "silver", "gold", "platinum"]
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    frequency_score: int | None = Field(default=None, ge=1, le=5)
    monetary_score: int | None = Field(default=None, ge=1, le=5)


class SurveyCompleted(Event):
    """Answers to a survey after a sale or a ticket."""

    TYPE = "rapport.survey.completed.v1"
    PERSONAL = frozenset({"answers"})
    survey_id: str
    answers: dict[str, Any] = Field(default_factory=dict)
    nps_score: int | None = Field(default=None, ge=0, le=10)


class LoyaltyPointsEarned(Event):
    """Points credited in a loyalty programme."""

    TYPE = "rapport.loyalty.points.earned.v1"
    program: str
    points: int
    balance: int | None = None
    reason: str | None = None
    order_id: str | None = None


# --- campaign -----------------------------------------------------------------


class _SegmentChange(Event):
    segment_id: str
    segment_name: str


class SegmentEntered(_SegmentChange):
    """The customer now matches a segment's rule."""

    TYPE = "rapport.segment.entered.v1"


class SegmentExited(_SegmentChange):
    """The customer no longer matches a segment's rule."""

    TYPE = "rapport.segment.exited.v1"


class _MessageEvent(Event):
    campaign_id: str
    message_id: str
    channel: Channel
    variant: str | None = None


class CampaignMessageSent(_MessageEvent):
    """A campaign message left for the customer."""

    TYPE = "rapport.campaign.message.sent.v1"


class CampaignMessageDelivered(_MessageEvent):
    """The channel accepted the message for the customer."""

    TYPE = "rapport.campaign.message.delivered.v1"


class CampaignMessageOpened(_MessageEvent):
    """The customer opened the message."""

    TYPE = "rapport.campaign.message.opened.v1"


class CampaignMessageClicked(_MessageEvent):
    """The customer clicked a link in the message (v2: `url` is None once shredded)."""

    TYPE = "rapport.campaign.message.clicked.v2"
    PERSONAL = frozenset({"url"})
    url: str | None = None


class CampaignConversionAttributed(Event):
    """An order was credited to a campaign message."""

    TYPE = "rapport.campaign.conversion.attributed.v1"
    campaign_id: str
    message_id: str
    order_id: str
    revenue: Decimal = Field(ge=0)
    currency: Currency = "EUR"
    model: Literal["last_touch", "first_touch"] = "last_touch"


# --- support ------------------------------------------------------------------

Priority = Literal["low", "normal", "high", "urgent"]
TicketStatus = Literal["new", "open", "pending", "resolved", "closed"]


class TicketOpened(Event):
    """A support ticket was opened for the customer (v2: `subject` is None once shredded)."""

    TYPE = "rapport.ticket.opened.v2"
    PERSONAL = frozenset({"subject"})
    ticket_id: str
    subject: str | None = None
    category: str | None = None
    priority: Priority = "normal"
    channel: Literal["phone", "email", "chat", "social", "web"] = "email"
    product_model: str | None = None


class TicketUpdated(Event):
    """A ticket's status, priority, assignee or category changed."""

    TYPE = "rapport.ticket.updated.v1"
    PERSONAL = frozenset({"changes"})
    ticket_id: str
    status: TicketStatus
    changes: dict[str, Any] = Field(default_factory=dict)


class TicketResolved(Event):
    """A ticket was resolved (v2: `resolution` is None once shredded)."""

    TYPE = "rapport.ticket.resolved.v2"
    PERSONAL = frozenset({"resolution"})
    ticket_id: str
    resolution: str | None = None
    category: str | None = None
    product_model: str | None = None


class TicketRated(Event):
    """The customer rated the support received."""

    TYPE = "rapport.ticket.rated.v1"
    PERSONAL = frozenset({"comment"})
    ticket_id: str
    rating: int = Field(ge=1, le=5)
    comment: str | None = None


class TicketSlaBreached(Event):
    """A ticket missed its SLA target (first response or resolution)."""

    TYPE = "rapport.ticket.sla.breached.v1"
    ticket_id: str
    target: Literal["first_response", "resolution"]
    priority: Priority = "normal"
    due_at: datetime
    breached_at: datetime


class SocialMentionReceived(Event):
    """Someone spoke of us on a social platform (customer_id may be the handle's key).

    v2: `handle` and `text` are None once shredded.
    """

    TYPE = "rapport.social.mention.received.v2"
    PERSONAL = frozenset({"handle", "text", "url"})
    mention_id: str
    platform: str
    handle: str | None = None
    text: str | None = None
    url: str | None = None
    sentiment: Literal["positive", "neutral", "negative"] | None = None
    linked: bool = Field(default=False, description="True when customer_id is a known customer")


class SocialReplySent(Event):
    """Support's answer to a mention reached the platform's webhook (v2: `handle` and
    `text` are None once shredded)."""

    TYPE = "rapport.social.reply.sent.v2"
    PERSONAL = frozenset({"handle", "text"})
    mention_id: str
    reply_id: str
    platform: str
    handle: str | None = None
    text: str | None = None
    author: str


# --- partner-share ------------------------------------------------------------


class PartnerDataDisclosed(Event):
    """A partner was shown consented slices of the customer (the audit ledger)."""

    TYPE = "rapport.partner.data.disclosed.v1"
    partner_id: str
    partner_name: str | None = None
    partner_ref: str
    slices: tuple[Slice, ...]
    fields: tuple[str, ...] = ()
    purpose: str = "partner_sharing"
    consent_version: int | None = None
    request_id: str | None = None


class PartnerEventContributed(Event):
    """A partner contributed an interaction about a consenting customer."""

    TYPE = "rapport.partner.event.contributed.v1"
    PERSONAL = frozenset({"properties"})
    partner_id: str
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


# --- accounts (profile's group calls) ---------------------------------------


class AccountJoined(Event):
    """A Segment group call: the customer belongs to the account `account_id` (its traits)."""

    TYPE = "rapport.account.joined.v1"
    PERSONAL = frozenset({"traits"})
    account_id: str = Field(min_length=1, max_length=255)
    name: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)


# --- sales --------------------------------------------------------------------

ActivityKind = Literal["task", "meeting", "call", "note", "email", "document"]


class AccountCreated(Event):
    """Sales opened an account (a company); `customer_id` is the account's own subject."""

    TYPE = "rapport.account.created.v1"
    account_id: str
    name: str
    domain: str | None = None
    industry: str | None = None
    size: str | None = None
    owner: str | None = None


class AccountContactLinked(Event):
    """The customer is a contact of the account (by a group call or by hand)."""

    TYPE = "rapport.account.contact.linked.v1"
    account_id: str
    account_name: str
    source: Literal["group", "manual"] = "manual"
    role: str | None = None


class _OpportunityEvent(Event):
    opportunity_id: str
    account_id: str
    pipeline_id: str
    amount: Decimal = Field(ge=0)
    currency: Currency = "EUR"
    owner: str | None = None


class OpportunityCreated(_OpportunityEvent):
    """A sales opportunity was opened for the customer (its primary contact)."""

    TYPE = "rapport.opportunity.created.v1"
    name: str
    stage: str
    probability: Decimal = Field(ge=0, le=1)
    expected_close_date: date | None = None
    source: str | None = None


class OpportunityStageChanged(_OpportunityEvent):
    """An opportunity moved from one stage of its pipeline to another."""

    TYPE = "rapport.opportunity.stage.changed.v1"
    from_stage: str
    to_stage: str
    probability: Decimal = Field(ge=0, le=1)


class OpportunityWon(_OpportunityEvent):
    """An opportunity was won; `order_id` names the order it recorded, if any."""

    TYPE = "rapport.opportunity.won.v1"
    order_id: str | None = None
    cycle_days: int = Field(ge=0)


class OpportunityLost(_OpportunityEvent):
    """An opportunity was lost, and why."""

    TYPE = "rapport.opportunity.lost.v1"
    # Free text a salesperson wrote, which may name people; None once the key is shredded.
    PERSONAL = frozenset({"reason"})
    reason: str | None = None
    cycle_days: int = Field(ge=0)


class ActivityLogged(Event):
    """A task, meeting, call, note, e-mail or document about the customer was logged."""

    TYPE = "rapport.activity.logged.v1"
    # Free text about a person; None once the customer's data key is shredded.
    PERSONAL = frozenset({"subject"})
    activity_id: str
    kind: ActivityKind
    subject: str | None = None
    account_id: str | None = None
    owner: str | None = None
    due_at: datetime | None = None
    starts_at: datetime | None = None


EVENT_MODELS: tuple[type[Event], ...] = (
    CustomerRegistered,
    CustomerUpdated,
    CustomerMerged,
    CustomerErased,
    ConsentGranted,
    ConsentRevoked,
    InteractionTracked,
    CartUpdated,
    OrderCompleted,
    CustomerValueChanged,
    SurveyCompleted,
    LoyaltyPointsEarned,
    SegmentEntered,
    SegmentExited,
    CampaignMessageSent,
    CampaignMessageDelivered,
    CampaignMessageOpened,
    CampaignMessageClicked,
    CampaignConversionAttributed,
    TicketOpened,
    TicketUpdated,
    TicketResolved,
    TicketRated,
    TicketSlaBreached,
    SocialMentionReceived,
    SocialReplySent,
    PartnerDataDisclosed,
    PartnerEventContributed,
    AccountJoined,
    AccountCreated,
    AccountContactLinked,
    OpportunityCreated,
    OpportunityStageChanged,
    OpportunityWon,
    OpportunityLost,
    ActivityLogged,
)

EVENT_TYPES: dict[str, type[Event]] = {model.TYPE: model for model in EVENT_MODELS}

__all__ = [m.__name__ for m in EVENT_MODELS] + [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "LineItem",
    "Purpose",
    "Channel",
    "Slice",
    "ActivityKind",
    "datetime",
]
