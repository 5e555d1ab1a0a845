"""Every event type on the customer log, one frozen model each.

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
    product_model: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    price: Decimal = Field(ge=0)
    quantity: int = Field(default=1, ge=1)
    serial_number: str | None = Field(default=None, max_length=128)


# --- customer -----------------------------------------------------------------


class CustomerRegistered(Event):
    """A customer became known to profile."""

    TYPE = "rapport.customer.registered.v1"
    email: str
    phone: str | None = None
    first_name: str
    last_name: str
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


class SurveyCompleted(Event):
    """Answers to a survey after a sale or a ticket."""

    TYPE = "rapport.survey.completed.v1"
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
    """The customer clicked a link in the message."""

    TYPE = "rapport.campaign.message.clicked.v1"
    url: str


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
    """A support ticket was opened for the customer."""

    TYPE = "rapport.ticket.opened.v1"
    ticket_id: str
    subject: str
    category: str | None = None
    priority: Priority = "normal"
    channel: Literal["phone", "email", "chat", "social", "web"] = "email"
    product_model: str | None = None


class TicketUpdated(Event):
    """A ticket's status, priority, assignee or category changed."""

    TYPE = "rapport.ticket.updated.v1"
    ticket_id: str
    status: TicketStatus
    changes: dict[str, Any] = Field(default_factory=dict)


class TicketResolved(Event):
    """A ticket was resolved."""

    TYPE = "rapport.ticket.resolved.v1"
    ticket_id: str
    resolution: str
    category: str | None = None
    product_model: str | None = None


class TicketRated(Event):
    """The customer rated the support received."""

    TYPE = "rapport.ticket.rated.v1"
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
    """Someone spoke of us on a social platform (customer_id may be the handle's key)."""

    TYPE = "rapport.social.mention.received.v1"
    mention_id: str
    platform: str
    handle: str
    text: str
    url: str | None = None
    sentiment: Literal["positive", "neutral", "negative"] | None = None
    linked: bool = Field(default=False, description="True when customer_id is a known customer")


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
    partner_id: str
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


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
    PartnerDataDisclosed,
    PartnerEventContributed,
)

EVENT_TYPES: dict[str, type[Event]] = {model.TYPE: model for model in EVENT_MODELS}

__all__ = [m.__name__ for m in EVENT_MODELS] + [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "LineItem",
    "Purpose",
    "Channel",
    "Slice",
    "datetime",
]
