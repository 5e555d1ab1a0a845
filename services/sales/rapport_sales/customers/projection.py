"""What sales learns from the log about customers: who they are (to link contacts and
e-mails) and where they came from. A run of events is applied with one read per table."""

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.types import CampaignMessageClicked, CustomerRegistered, CustomerUpdated
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer

PERSON_FIELDS = ("email", "first_name", "last_name", "acquisition_channel")
LIMITS = {"email": 320, "first_name": 200, "last_name": 200, "acquisition_channel": 100}


async def erased_among(session: AsyncSession, ids: set[str]) -> set[str]:
    """The ids of `ids` that were erased: their late events change nothing."""
    if not ids:
        return set()
    rows = await session.exec(
        select(ErasedCustomer.customer_id).where(col(ErasedCustomer.customer_id).in_(ids))
    )
    return set(rows.all())


async def _customers(session: AsyncSession, ids: set[str]) -> dict[str, SalesCustomer]:
    rows = await session.exec(select(SalesCustomer).where(col(SalesCustomer.customer_id).in_(ids)))
    return {row.customer_id: row for row in rows.all()}


def _fit(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower() if name == "email" else value.strip()
    return value[: LIMITS[name]]


async def note_customers(
    session: AsyncSession, events: Sequence[CustomerRegistered | CustomerUpdated]
) -> None:
    """Registrations and updates, in log order: the name, address and channel of each."""
    ids = {event.customer_id for event in events}
    erased = await erased_among(session, ids)
    known = await _customers(session, ids - erased)
    for event in events:
        if event.customer_id in erased:
            continue
        values = (
            {name: getattr(event, name) for name in PERSON_FIELDS}
            if isinstance(event, CustomerRegistered)
            else {name: value for name, value in event.changes.items() if name in PERSON_FIELDS}
        )
        person = known.get(event.customer_id)
        if person is None:
            if isinstance(event, CustomerUpdated):
                continue  # an update of someone never registered here: profile will replay it
            person = known[event.customer_id] = SalesCustomer(
                customer_id=event.customer_id, updated_at=event.occurred_at
            )
        for name, value in values.items():
            setattr(person, name, _fit(name, value))
        person.updated_at = utcnow()
        session.add(person)


async def note_clicks(session: AsyncSession, events: Sequence[CampaignMessageClicked]) -> None:
    """The campaign each customer clicked last: the source of their next opportunity."""
    known = await _customers(session, {event.customer_id for event in events})
    for event in events:
        person = known.get(event.customer_id)
        if person is not None:
            person.last_campaign_id = event.campaign_id[:64]
            session.add(person)
