"""What touches every domain at once: a customer's export, erasure and merge, on the unit of
work (`SalesUnitOfWork`); the handlers build the SQL one on the consumer's session."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased, CustomerMerged
from rapport_sales.activities import documents
from rapport_sales.activities import service as activities
from rapport_sales.customers.models import ErasedCustomer
from rapport_sales.opportunities import service as opportunities
from rapport_sales.settings import Settings
from rapport_sales.shared import aware
from rapport_sales.unit_of_work import SalesUnitOfWork, SqlSalesUnitOfWork


class CustomerExport(BaseModel):
    """Everything sales holds about one customer, table by table."""

    service: str = "sales"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


async def export_customer(uow: SalesUnitOfWork, customer_id: str) -> CustomerExport:
    """Everything sales holds about the customer (empty lists when nothing)."""
    person = await uow.customers.get_customer(customer_id)
    tombstone = await uow.customers.tombstone_of(customer_id)
    rows: dict[str, list[Any]] = {
        "customers": [person] if person is not None else [],
        "account_contacts": await uow.accounts.contacts_of(customer_id),
        "opportunities": await uow.opportunities.opportunities_of_customers([customer_id]),
        "opportunity_contacts": await uow.opportunities.contacts_of_customer(customer_id),
        "activities": await uow.activities.linked_to(customer_id),
        "documents": await uow.activities.documents_linked_to(customer_id),
        "erasure_tombstones": [tombstone] if tombstone is not None else [],
    }
    records = {name: [_exported(row) for row in found] for name, found in rows.items()}
    return CustomerExport(customer_id=customer_id, records=records)


def _exported(row: SQLModel) -> dict[str, Any]:
    values = row.model_dump(mode="json")
    for name, value in row.model_dump().items():
        if isinstance(value, datetime):
            values[name] = aware(value).isoformat()
        elif isinstance(value, date):
            values[name] = value.isoformat()
    return values


async def erase_customer(uow: SalesUnitOfWork, customer_id: str, documents_dir: Path) -> None:
    """Remove the person: their record, contact links, e-mail text and address; accounts,
    opportunities and activities stay with the company. A tombstone drops late events."""
    person = await uow.customers.get_customer(customer_id)
    emails = [person.email] if person is not None and person.email else []
    await documents.forget_person(uow, documents_dir, [customer_id])
    await activities.forget_person(uow, [customer_id], emails)
    await opportunities.forget_contact(uow, [customer_id])
    await uow.accounts.delete_contacts_of(customer_id)
    if person is not None:
        await uow.customers.delete(person)
    if not await uow.customers.erased_among([customer_id]):
        uow.customers.add(ErasedCustomer(customer_id=customer_id, erased_at=utcnow()))


async def apply_erasure(event: CustomerErased, session: AsyncSession, settings: Settings) -> None:
    """The person goes; accounts and opportunities stay without them."""
    uow = SqlSalesUnitOfWork(session)
    await erase_customer(uow, event.customer_id, Path(settings.documents_dir))
    # SQLite's write-ahead log still holds the deleted bytes until a checkpoint.
    checkpoint_after_commit(session)


async def merge_customer(uow: SalesUnitOfWork, survivor: str, duplicate: str) -> None:
    """The duplicate's links and deals move to the surviving customer; the duplicate goes."""
    if survivor == duplicate:
        return
    await uow.accounts.move_contacts(duplicate, survivor)
    await uow.opportunities.move_contacts(duplicate, survivor)
    await uow.activities.move_contacts(duplicate, survivor)
    await uow.opportunities.move_deals(duplicate, survivor)
    person = await uow.customers.get_customer(duplicate)
    if person is not None:
        await uow.customers.delete(person)


async def apply_merge(session: AsyncSession, event: CustomerMerged) -> None:
    """A merge from the log, in the consumer's transaction."""
    await merge_customer(SqlSalesUnitOfWork(session), event.customer_id, event.merged_customer_id)
