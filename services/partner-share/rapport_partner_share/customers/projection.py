"""What partner-share learns of customers from the log: that they exist, and since when."""

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import bulk
from rapport_events.consumer import batch
from rapport_events.types import CustomerRegistered
from rapport_partner_share.customers import store
from rapport_partner_share.customers.models import KnownCustomer


@batch
async def apply_registrations(session: AsyncSession, events: Sequence[CustomerRegistered]) -> None:
    """Remember that customers exist, and since when; a replay changes nothing."""
    ids = {event.customer_id for event in events}
    erased = await store.erased_among(session, ids)
    # Only the id and the date: partners may see personal data only through consented
    # slices, so none is copied from the registration. The first registration wins.
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.customer_id not in erased and event.customer_id not in rows:
            rows[event.customer_id] = {
                "customer_id": event.customer_id,
                "registered_at": event.occurred_at,
            }
    await bulk.upsert(session, KnownCustomer, list(rows.values()), ("customer_id",))
