"""The products customers own (projected from order.completed), and what usually goes wrong
with a product model."""

from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy import Column, Date, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_support.shared import TZ, Public, UtcDatetime
from rapport_support.tickets.models import SimilarTicket


def model_key(product_model: str | None) -> str | None:
    """Product models compare without case or surrounding blanks ("barista x2" = "Barista X2")."""
    if product_model is None:
        return None
    key = " ".join(product_model.split()).lower()
    return key or None


class SupportProduct(SQLModel, table=True):
    """One product line a customer bought, with its warranty."""

    __tablename__ = "support_products"
    __table_args__ = (UniqueConstraint("customer_id", "order_id", "line_no"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    customer_id: str = Field(max_length=64, index=True)
    order_id: str = Field(max_length=128)
    line_no: int
    product_id: str = Field(max_length=128)
    product_model: str | None = Field(default=None, max_length=128)
    product_model_key: str | None = Field(default=None, max_length=128, index=True)
    name: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    serial_number: str | None = Field(default=None, max_length=128)
    quantity: int = 1
    purchased_at: datetime = Field(sa_column=Column(TZ, nullable=False))
    warranty_ends_on: date = Field(sa_column=Column(Date, nullable=False))


class ProductPublic(Public):
    """A product the customer owns."""

    product_id: str
    product_model: str | None
    name: str | None
    category: str | None
    serial_number: str | None
    quantity: int
    order_id: str
    purchased_at: UtcDatetime
    warranty_ends_on: date
    under_warranty: bool = False


class ResolutionCount(BaseModel):
    resolution: str
    tickets: int


class CategoryIssues(BaseModel):
    category: str
    tickets: int
    share: float
    resolved: int
    resolutions: list[ResolutionCount]


class KnownIssues(BaseModel):
    """What usually goes wrong with a product model, and how it was fixed."""

    product_model: str
    tickets: int
    open_tickets: int
    categories: list[CategoryIssues]
    similar: list[SimilarTicket] = []
