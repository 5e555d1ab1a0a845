"""Request and reply bodies of the sales API."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rapport_events.limits import ID_PATTERN, Checked, Line, SaneDate, SaneDatetime, Text

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Name = Annotated[Line, Field(min_length=1, max_length=200)]
Owner = Annotated[Line, Field(min_length=1, max_length=128)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), decimal_places=2)]
Probability = Annotated[Decimal, Field(ge=0, le=1, decimal_places=4)]
Outcome = Literal["open", "won", "lost"]
Status = Literal["open", "won", "lost"]
Size = Literal["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"]
DOMAIN_PATTERN = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class _Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("*")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        """SQLite hands timestamps back naive; every stored one is UTC."""
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# --- accounts --------------------------------------------------------------------------------


class AccountCreate(Checked):
    """A company to sell to."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme Coffee",
                    "domain": "acme.example",
                    "industry": "hospitality",
                    "size": "51-200",
                    "owner": "rep:grace",
                }
            ]
        }
    )

    name: Name
    domain: Annotated[str | None, Field(max_length=253)] = None
    industry: Annotated[Line | None, Field(max_length=100)] = None
    size: Size | None = None
    owner: Owner | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        import re

        if value is None:
            return None
        value = value.strip().lower()
        if not re.fullmatch(DOMAIN_PATTERN, value):
            raise ValueError("domain must be a host name such as acme.example")
        return value


class AccountUpdate(AccountCreate):
    """The fields to change; the ones left out stay as they are."""

    name: Name | None = None  # type: ignore[assignment]


class ContactLink(Checked):
    """How the customer relates to the account."""

    role: Annotated[Line | None, Field(max_length=100)] = None


class ContactPublic(_Reply):
    customer_id: str
    source: str
    role: str | None
    linked_at: datetime
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class AccountPublic(_Reply):
    id: str
    external_id: str | None
    name: str
    domain: str | None
    industry: str | None
    size: str | None
    owner: str | None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    contacts: list[ContactPublic] = Field(default_factory=list)


# --- pipelines -------------------------------------------------------------------------------


class StageIn(Checked):
    """One stage; its place in the list is its order."""

    key: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
    name: Name
    probability: Probability
    outcome: Outcome = "open"


class PipelineCreate(Checked):
    """A sales process: ordered stages, one won and one lost stage among them."""

    name: Name
    stages: Annotated[list[StageIn], Field(min_length=3, max_length=30)]

    @model_validator(mode="after")
    def _coherent(self) -> "PipelineCreate":
        keys = [stage.key for stage in self.stages]
        if len(set(keys)) != len(keys):
            raise ValueError("stage keys must be unique")
        outcomes = [stage.outcome for stage in self.stages]
        if outcomes.count("won") != 1 or outcomes.count("lost") != 1:
            raise ValueError("a pipeline has exactly one won and one lost stage")
        for stage in self.stages:
            if stage.outcome == "won" and stage.probability != 1:
                raise ValueError("the won stage's probability is 1")
            if stage.outcome == "lost" and stage.probability != 0:
                raise ValueError("the lost stage's probability is 0")
        return self


class StagePublic(_Reply):
    key: str
    name: str
    position: int
    probability: Decimal
    outcome: str


class PipelinePublic(_Reply):
    id: str
    name: str
    stages: list[StagePublic]


# --- opportunities ---------------------------------------------------------------------------


class ProductLine(Checked):
    """A product the deal sells."""

    product_id: Annotated[Line, Field(min_length=1, max_length=128)]
    name: Annotated[Line | None, Field(max_length=256)] = None
    price: Money
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] = 1


class OpportunityCreate(Checked):
    """A deal with an account; `customer_id` is its primary contact."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "9b2f6d3e-1c4a-4e8f-b0a7-5d6c3e2f1a90",
                    "name": "Acme: 20 espresso machines",
                    "amount": "12000.00",
                    "currency": "EUR",
                    "stage": "qualified",
                    "expected_close_date": "2026-12-31",
                    "owner": "rep:grace",
                    "customer_id": "3f0c6f0e-5a8e-4c57-9c3e-2b1f0f7d9a11",
                    "products": [
                        {
                            "product_id": "sku-x2",
                            "name": "Barista X2",
                            "price": "600",
                            "quantity": 20,
                        }
                    ],
                }
            ]
        }
    )

    account_id: Id
    name: Name
    amount: Money
    currency: Currency | None = None
    pipeline_id: Id | None = None
    stage: Annotated[str | None, Field(max_length=64)] = None
    expected_close_date: SaneDate | None = None
    owner: Owner | None = None
    customer_id: Id | None = None
    contacts: Annotated[list[Id], Field(max_length=50)] = Field(default_factory=list)
    source: Annotated[Line | None, Field(max_length=200)] = None
    products: Annotated[list[ProductLine], Field(max_length=100)] = Field(default_factory=list)


class OpportunityUpdate(Checked):
    """The fields to change; a new `stage` is a stage change (open stages only)."""

    name: Name | None = None
    amount: Money | None = None
    expected_close_date: SaneDate | None = None
    owner: Owner | None = None
    stage: Annotated[str | None, Field(max_length=64)] = None


class OpportunityWin(Checked):
    """Close as won; with `record_order` the deal becomes an order of the primary contact."""

    record_order: bool = True


class OpportunityLose(Checked):
    """Close as lost, and why."""

    reason: Annotated[Text, Field(min_length=1, max_length=500)]


class StageChangePublic(_Reply):
    from_stage: str | None
    to_stage: str
    changed_at: datetime


class OpportunityPublic(_Reply):
    id: str
    pipeline_id: str
    account_id: str
    customer_id: str | None
    contacts: list[str] = Field(default_factory=list)
    name: str
    owner: str | None
    amount: Decimal
    currency: str
    expected_close_date: date | None
    stage: str
    probability: Decimal
    status: str
    source: str | None
    products: list[dict[str, Any]]
    lost_reason: str | None
    order_id: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    history: list[StageChangePublic] = Field(default_factory=list)


# --- activities ------------------------------------------------------------------------------

ActivityKindIn = Literal["call", "note"]


class _ActivityIn(Checked):
    subject: Annotated[Line, Field(min_length=1, max_length=500)]
    body: Annotated[Text, Field(max_length=20_000)] = ""
    account_id: Id | None = None
    customer_ids: Annotated[list[Id], Field(max_length=50)] = Field(default_factory=list)
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
    location: Annotated[Line | None, Field(max_length=500)] = None
    attendees: Annotated[list[Annotated[str, Field(max_length=320)]], Field(max_length=100)] = (
        Field(default_factory=list)
    )

    @model_validator(mode="after")
    def _ordered(self) -> "MeetingCreate":
        if self.ends_at <= self.starts_at:
            raise ValueError("a meeting ends after it starts")
        for address in self.attendees:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"attendee {address!r} is not an e-mail address")
        return self


class ActivityPublic(_Reply):
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
    customer_ids: list[str] = Field(default_factory=list)


class TimelineItem(BaseModel):
    """One entry of an account's timeline: its own activity or a contact's event."""

    at: datetime
    source: Literal["sales", "profile"]
    type: str
    customer_id: str | None = None
    data: dict[str, Any]


class AccountTimeline(BaseModel):
    """Newest first; `complete` is False when a contact's timeline could not be had."""

    items: list[TimelineItem]
    complete: bool


class CustomerExport(BaseModel):
    """Everything sales holds about one customer, table by table."""

    service: str = "sales"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]
