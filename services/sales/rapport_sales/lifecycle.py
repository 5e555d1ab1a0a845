"""What touches every domain at once: a customer's export, erasure and merge."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased, CustomerMerged
from rapport_sales.accounts.models import SalesContact
from rapport_sales.activities import documents
from rapport_sales.activities import service as activities
from rapport_sales.activities.models import SalesActivity, SalesActivityContact, SalesDocument
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer
from rapport_sales.opportunities import service as opportunities
from rapport_sales.opportunities.models import SalesOpportunity, SalesOpportunityContact
from rapport_sales.settings import Settings
from rapport_sales.shared import aware
from rapport_sales.unit_of_work import SalesUnitOfWork, SqlSalesUnitOfWork


class CustomerExport(BaseModel):
    """Everything sales holds about one customer, table by table."""

    service: str = "sales"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """Everything sales holds about the customer (empty lists when nothing)."""
    linked_activities = select(SalesActivityContact.activity_id).where(
        SalesActivityContact.customer_id == customer_id
    )
    queries: dict[str, Any] = {
        "customers": select(SalesCustomer).where(SalesCustomer.customer_id == customer_id),
        "account_contacts": select(SalesContact).where(SalesContact.customer_id == customer_id),
        "opportunities": select(SalesOpportunity).where(
            SalesOpportunity.customer_id == customer_id
        ),
        "opportunity_contacts": select(SalesOpportunityContact).where(
            SalesOpportunityContact.customer_id == customer_id
        ),
        "activities": select(SalesActivity).where(col(SalesActivity.id).in_(linked_activities)),
        "documents": select(SalesDocument).where(col(SalesDocument.id).in_(linked_activities)),
        "erasure_tombstones": select(ErasedCustomer).where(
            ErasedCustomer.customer_id == customer_id
        ),
    }
    records = {
        name: [_exported(row) for row in (await session.exec(query)).all()]
        for name, query in queries.items()
    }
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


async def merge_customer(session: AsyncSession, event: CustomerMerged) -> None:
    """The duplicate's links move to the surviving customer; the duplicate goes.

    Like the export, it works on every link table at once, so on the session itself."""
    survivor, duplicate = event.customer_id, event.merged_customer_id
    if survivor == duplicate:
        return
    for model in (SalesContact, SalesOpportunityContact, SalesActivityContact):
        await _move_links(session, model, duplicate, survivor)
    uow = SqlSalesUnitOfWork(session)
    await uow.opportunities.move_deals(duplicate, survivor)
    person = await uow.customers.get_customer(duplicate)
    if person is not None:
        await uow.customers.delete(person)


async def _move_links(session: AsyncSession, model: Any, duplicate: str, survivor: str) -> None:
    rows = list((await session.exec(select(model).where(model.customer_id == duplicate))).all())
    kept = {
        tuple(getattr(row, key) for key in _other_keys(model))
        for row in (await session.exec(select(model).where(model.customer_id == survivor))).all()
    }
    for row in rows:
        values = row.model_dump()
        await session.delete(row)
        if tuple(values[key] for key in _other_keys(model)) in kept:
            continue
        session.add(model(**{**values, "customer_id": survivor}))
    await session.flush()


def _other_keys(model: Any) -> list[str]:
    return [
        column.name
        for column in model.__table__.primary_key.columns
        if column.name != "customer_id"
    ]
