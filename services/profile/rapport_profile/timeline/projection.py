"""What the log tells the timeline: every event about a customer, and partner disclosures."""

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.codec import Envelope
from rapport_events.consumer import batch
from rapport_events.types import (
    PartnerDataDisclosed,
)
from rapport_profile.identity import service as identity_service
from rapport_profile.shared import utc
from rapport_profile.timeline import store


@batch
async def record_timeline(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Put each event on its customer's timeline, once."""
    owners = await identity_service.resolve_all(
        session, {envelope.data.customer_id for envelope in envelopes}
    )
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for envelope in envelopes:
        event = envelope.data
        owner = owners[event.customer_id]
        if owner is None or envelope.id in rows:
            continue
        rows[envelope.id] = {
            "id": envelope.id,
            "customer_id": owner,
            "subject_id": event.customer_id,
            "type": envelope.type,
            "source": envelope.source,
            "occurred_at": utc(event.occurred_at),
            "data": event.model_dump(mode="json", exclude={"customer_id", "occurred_at"}),
            "recorded_at": now,
        }
    await store.add_timeline_entries(session, list(rows.values()))


@batch
async def record_disclosures(
    session: AsyncSession, events: Sequence[PartnerDataDisclosed], envelopes: Sequence[Envelope]
) -> None:
    """Keep the audit of what a partner saw (an event id once)."""
    owners = await identity_service.resolve_all(session, {event.customer_id for event in events})
    rows: dict[str, dict[str, Any]] = {}
    for event, envelope in zip(events, envelopes, strict=True):
        owner = owners[event.customer_id]
        if owner is None or envelope.id in rows:
            continue
        rows[envelope.id] = {
            "id": envelope.id,
            "customer_id": owner,
            "subject_id": event.customer_id,
            "partner_id": event.partner_id,
            "partner_name": event.partner_name,
            "partner_ref": event.partner_ref,
            "slices": list(event.slices),
            "fields": list(event.fields),
            "purpose": event.purpose,
            "consent_version": event.consent_version,
            "request_id": event.request_id,
            "disclosed_at": utc(event.occurred_at),
        }
    await store.add_disclosures(session, list(rows.values()))
