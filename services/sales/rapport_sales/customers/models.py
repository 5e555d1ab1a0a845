"""The customers sales learns of from the log, and the tombstones of erased ones.

Personal data is kept to what selling needs: the contact's customer id, name and
e-mail address (to link logged e-mails). An erasure removes all of it; accounts and
opportunities, which belong to the company, survive without the person.
"""

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from rapport_sales.shared import TZ


class SalesCustomer(SQLModel, table=True):
    """A customer profile knows, with what sales needs to find them: name and e-mail."""

    __tablename__ = "sales_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    email: str | None = Field(default=None, max_length=320, index=True)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    # Where the customer came from, for an opportunity's source: profile's acquisition
    # channel, and the campaign of their latest click.
    acquisition_channel: str | None = Field(default=None, max_length=100)
    last_campaign_id: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=Column(TZ, nullable=False))


class ErasedCustomer(SQLModel, table=True):
    """The tombstone of an erased customer: the id alone, so late events about them are dropped."""

    __tablename__ = "sales_erased_customers"

    customer_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(sa_column=Column(TZ, nullable=False))
