"""What the log tells the timeline: every event about a customer, and partner disclosures."""

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

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

Row = dict[str, Any]


class AboutACustomer(Protocol):
    @property
    def customer_id(self) -> str: ...


E = TypeVar("E", bound=AboutACustomer)


@batch
async def record_timeline(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Put each event on its customer's timeline, once."""
    now = utcnow()

    def entry(envelope: Envelope, event: Any) -> Row:
        return {
            "type": envelope.type,
            "source": envelope.source,
            "occurred_at": utc(event.occurred_at),
            "data": event.model_dump(mode="json", exclude={"customer_id", "occurred_at"}),
            "recorded_at": now,
        }

    pairs = [(envelope, envelope.data) for envelope in envelopes]
    await store.add_timeline_entries(session, await _owned_rows(session, pairs, entry))


@batch
async def record_disclosures(
    session: AsyncSession, events: Sequence[PartnerDataDisclosed], envelopes: Sequence[Envelope]
) -> None:
    """Keep the audit of what a partner saw (an event id once)."""

    def disclosure(_envelope: Envelope, event: PartnerDataDisclosed) -> Row:
        return {
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

    pairs = list(zip(envelopes, events, strict=True))
    await store.add_disclosures(session, await _owned_rows(session, pairs, disclosure))


async def _owned_rows(
    session: AsyncSession,
    pairs: Sequence[tuple[Envelope, E]],
    columns: Callable[[Envelope, E], Row],
) -> list[Row]:
    """One row per event id, kept by the customer who owns its subject now (through merges);
    none for an erased customer."""
    owners = await identity_service.resolve_all(session, {event.customer_id for _, event in pairs})
    rows: dict[str, Row] = {}
    for envelope, event in pairs:
        owner = owners[event.customer_id]
        if owner is None or envelope.id in rows:
            continue
        rows[envelope.id] = {
            "id": envelope.id,
            "customer_id": owner,
            "subject_id": event.customer_id,
            **columns(envelope, event),
        }
    return list(rows.values())
