"""The customers partner-share has heard of, and the tombstones of erased ones: ids and
dates, no personal data."""

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from rapport_partner_share.shared import UtcDatetime, when


class KnownCustomer(SQLModel, table=True):
    """A customer partner-share has heard of: an id and a date, no personal data."""

    __tablename__ = "partner_known_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    registered_at: datetime = when()


class ErasedCustomer(SQLModel, table=True):
    """The tombstone of an erased customer: late events for this id are dropped."""

    __tablename__ = "partner_share_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = when()


class KnownCustomerPublic(BaseModel):
    """A known customer as the admin API shows it."""

    customer_id: str
    known_since: UtcDatetime

    @classmethod
    def of(cls, customer: KnownCustomer) -> "KnownCustomerPublic":
        """The reply for one known customer."""
        return cls(customer_id=customer.customer_id, known_since=customer.registered_at)
