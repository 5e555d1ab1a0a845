"""Pipelines with ordered stages and opportunities moving through them: the tables, their
stage history, and the bodies of the pipelines and opportunities routes."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Date, Index, Numeric
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_events.limits import Checked, Line, SaneDate, Text
from rapport_sales.shared import TZ, Id, Name, Owner, Reply, new_id

MONEY = Numeric(14, 2)
PROBABILITY = Numeric(5, 4)

Currency = Annotated[str, PydanticField(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, PydanticField(ge=0, le=Decimal("999999999999.99"), decimal_places=2)]
Probability = Annotated[Decimal, PydanticField(ge=0, le=1, decimal_places=4)]
Outcome = Literal["open", "won", "lost"]
Status = Literal["open", "won", "lost"]


# --- tables ----------------------------------------------------------------------------------


class SalesPipeline(SQLModel, table=True):
    """A sales process: its ordered stages are SalesStage rows."""

    __tablename__ = "sales_pipelines"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class SalesStage(SQLModel, table=True):
    """One stage of a pipeline: its place, win probability and whether it closes the deal."""

    __tablename__ = "sales_stages"

    pipeline_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    position: int
    probability: Decimal = Field(sa_type=PROBABILITY)
    outcome: str = Field(default="open", max_length=8)  # open, won or lost


class SalesOpportunity(SQLModel, table=True):
    """A deal in a pipeline; `customer_id` is its primary contact (None once erased)."""

    __tablename__ = "sales_opportunities"
    __table_args__ = (
        Index("ix_sales_opportunities_listing", "created_at", "id"),
        # Covers the pipeline report: it is answered from the index alone.
        Index(
            "ix_sales_opportunities_pipeline",
            "pipeline_id",
            "status",
            "stage",
            "owner",
            "currency",
            "amount",
            "probability",
        ),
        Index("ix_sales_opportunities_close", "status", "expected_close_date"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    pipeline_id: str = Field(max_length=64)
    account_id: str = Field(max_length=64, index=True)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=200)
    owner: str | None = Field(default=None, max_length=128, index=True)
    amount: Decimal = Field(sa_type=MONEY)
    currency: str = Field(max_length=3)
    expected_close_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    stage: str = Field(max_length=64)
    probability: Decimal = Field(sa_type=PROBABILITY)
    status: str = Field(default="open", max_length=8)  # open, won or lost
    source: str | None = Field(default=None, max_length=200)
    products: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    lost_reason: str | None = Field(default=None, max_length=500)
    order_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(TZ, nullable=True))


class SalesOpportunityContact(SQLModel, table=True):
    """A contact involved in an opportunity."""

    __tablename__ = "sales_opportunity_contacts"

    opportunity_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64, index=True)


class SalesStageChange(SQLModel, table=True):
    """The history of an opportunity's stages, for cycle times and the timeline."""

    __tablename__ = "sales_stage_changes"

    id: int | None = Field(default=None, sa_type=ROW_ID, primary_key=True)
    opportunity_id: str = Field(max_length=64, index=True)
    from_stage: str | None = Field(default=None, max_length=64)
    to_stage: str = Field(max_length=64)
    changed_at: datetime = Field(sa_column=Column(TZ, nullable=False))


# --- pipelines: request and reply bodies -----------------------------------------------------


class StageIn(Checked):
    """One stage; its place in the list is its order."""

    key: Annotated[str, PydanticField(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
    name: Name
    probability: Probability
    outcome: Outcome = "open"


class PipelineCreate(Checked):
    """A sales process: ordered stages, one won and one lost stage among them."""

    name: Name
    stages: Annotated[list[StageIn], PydanticField(min_length=3, max_length=30)]

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


class StagePublic(Reply):
    key: str
    name: str
    position: int
    probability: Decimal
    outcome: str


class PipelinePublic(Reply):
    id: str
    name: str
    stages: list[StagePublic]


# --- opportunities: request and reply bodies -------------------------------------------------


class ProductLine(Checked):
    """A product the deal sells."""

    product_id: Annotated[Line, PydanticField(min_length=1, max_length=128)]
    name: Annotated[Line | None, PydanticField(max_length=256)] = None
    price: Money
    quantity: Annotated[int, PydanticField(ge=1, le=1_000_000)] = 1


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
    stage: Annotated[str | None, PydanticField(max_length=64)] = None
    expected_close_date: SaneDate | None = None
    owner: Owner | None = None
    customer_id: Id | None = None
    contacts: Annotated[list[Id], PydanticField(max_length=50)] = PydanticField(
        default_factory=list
    )
    source: Annotated[Line | None, PydanticField(max_length=200)] = None
    products: Annotated[list[ProductLine], PydanticField(max_length=100)] = PydanticField(
        default_factory=list
    )


class OpportunityUpdate(Checked):
    """The fields to change; a new `stage` is a stage change (open stages only)."""

    name: Name | None = None
    amount: Money | None = None
    expected_close_date: SaneDate | None = None
    owner: Owner | None = None
    stage: Annotated[str | None, PydanticField(max_length=64)] = None


class OpportunityWin(Checked):
    """Close as won; with `record_order` the deal becomes an order of the primary contact."""

    record_order: bool = True


class OpportunityLose(Checked):
    """Close as lost, and why."""

    reason: Annotated[Text, PydanticField(min_length=1, max_length=500)]


class StageChangePublic(Reply):
    from_stage: str | None
    to_stage: str
    changed_at: datetime


class OpportunityPublic(Reply):
    id: str
    pipeline_id: str
    account_id: str
    customer_id: str | None
    contacts: list[str] = PydanticField(default_factory=list)
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
    history: list[StageChangePublic] = PydanticField(default_factory=list)
