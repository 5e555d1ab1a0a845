"""What touches every domain at once: a customer's export and erasure."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_sales import activities, documents, opportunities
from rapport_sales.models import (
    SalesActivity,
    SalesActivityContact,
    SalesContact,
    SalesCustomer,
    SalesDocument,
    SalesErasedCustomer,
    SalesOpportunity,
    SalesOpportunityContact,
    aware,
)
from rapport_sales.schemas import CustomerExport


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
        "erasure_tombstones": select(SalesErasedCustomer).where(
            SalesErasedCustomer.customer_id == customer_id
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


async def erase_customer(session: AsyncSession, customer_id: str, documents_dir: Path) -> None:
    """Remove the person: their record, contact links, e-mail text and address; accounts,
    opportunities and activities stay with the company. A tombstone drops late events."""
    person = await session.get(SalesCustomer, customer_id)
    emails = [person.email] if person is not None and person.email else []
    await documents.forget_person(session, documents_dir, [customer_id])
    await activities.forget_person(session, [customer_id], emails)
    await opportunities.forget_contact(session, [customer_id])
    await session.exec(  # type: ignore[call-overload]
        delete(SalesContact).where(col(SalesContact.customer_id) == customer_id)
    )
    if person is not None:
        await session.delete(person)
    if await session.get(SalesErasedCustomer, customer_id) is None:
        session.add(SalesErasedCustomer(customer_id=customer_id, erased_at=utcnow()))
