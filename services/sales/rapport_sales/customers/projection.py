"""What sales learns from the log about customers: who they are (to link contacts and
e-mails) and where they came from. A run of events is applied with one read per table."""

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.consumer import batch
from rapport_events.types import CampaignMessageClicked, CustomerRegistered, CustomerUpdated
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.unit_of_work import SalesUnitOfWork, SqlSalesUnitOfWork

PERSON_FIELDS = ("email", "first_name", "last_name", "acquisition_channel")
LIMITS = {"email": 320, "first_name": 200, "last_name": 200, "acquisition_channel": 100}


def _fit(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower() if name == "email" else value.strip()
    return value[: LIMITS[name]]


async def note_customers(
    uow: SalesUnitOfWork, events: Sequence[CustomerRegistered | CustomerUpdated]
) -> None:
    """Registrations and updates, in log order: the name, address and channel of each."""
    ids = {event.customer_id for event in events}
    # The erased stay erased: their late events change nothing.
    erased = await uow.customers.erased_among(ids)
    known = await uow.customers.customers_among(ids - erased)
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
        uow.customers.add(person)


async def note_clicks(uow: SalesUnitOfWork, events: Sequence[CampaignMessageClicked]) -> None:
    """The campaign each customer clicked last: the source of their next opportunity."""
    known = await uow.customers.customers_among({event.customer_id for event in events})
    for event in events:
        person = known.get(event.customer_id)
        if person is not None:
            person.last_campaign_id = event.campaign_id[:64]
            uow.customers.add(person)


@batch
async def apply_customer_changes(
    events: Sequence[CustomerRegistered | CustomerUpdated], session: AsyncSession
) -> None:
    """`note_customers` on the consumer's transaction."""
    await note_customers(SqlSalesUnitOfWork(session), events)


@batch
async def record_clicks(events: Sequence[CampaignMessageClicked], session: AsyncSession) -> None:
    """`note_clicks` on the consumer's transaction."""
    await note_clicks(SqlSalesUnitOfWork(session), events)
