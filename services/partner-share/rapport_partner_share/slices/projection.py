"""What keeps the shared slices current while a consent stands: customer, order, segment
and loyalty events.

They arrive in runs (`@batch`): a run reads the granted consents and the slices it may
change with one `IN` query per table (`runs.load_run`), applies its events in log order in
memory (`runs.Run`), and writes each table back with multi-row statements. A single event
is a run of one. Profile fills are in `fills`.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope
from rapport_events.consumer import batch
from rapport_events.types import (
    CustomerUpdated,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.consents.projection import drop_fill_in_flight
from rapport_partner_share.runs import Run, load_run
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices import rules


def _update_slice(
    run: Run,
    consent: PartnerConsent,
    slice_name: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    now: datetime,
) -> bool:
    data = run.slice(consent, slice_name)
    if data is None:
        return False
    updated = change(data)
    if updated is None:
        return False
    run.put_slice(consent, slice_name, updated)
    consent.changed_at = now
    run.save(consent)
    return True


async def _run_for(
    session: AsyncSession, events: Sequence[Event], slice_names: Iterable[str]
) -> Run:
    return await load_run(
        session, {event.customer_id for event in events}, slice_names=set(slice_names)
    )


@batch
async def apply_customer_updates(session: AsyncSession, events: Sequence[CustomerUpdated]) -> None:
    """Carry profile changes into the contact and demographics slices that are shared."""
    run = await _run_for(session, events, ("contact", "demographics"))
    for event in events:
        now = utcnow()
        for consent in run.granted(event.customer_id):
            if consent.fill_pending:
                drop_fill_in_flight(consent, now)
                run.save(consent)
            for slice_name in ("contact", "demographics"):
                if slice_name not in consent.slices:
                    continue
                changed = _update_slice(
                    run,
                    consent,
                    slice_name,
                    partial(_changed_slice, slice_name, event.changes),
                    now,
                )
                contact = run.slice(consent, "contact")
                if changed and slice_name == "contact" and contact is not None:
                    run.set_match_keys(consent, contact)
    await run.write(session, utcnow())


def _changed_slice(
    slice_name: str, changes: Mapping[str, Any], data: Mapping[str, Any]
) -> dict[str, Any] | None:
    return rules.apply_changes(slice_name, data, changes)


@batch
async def apply_orders(session: AsyncSession, events: Sequence[OrderCompleted]) -> None:
    """Count orders into the purchase summaries that are shared."""
    run = await _run_for(session, events, ("purchase_summary",))
    for event in events:
        now = utcnow()
        for consent in run.granted(event.customer_id, "purchase_summary"):
            _update_slice(
                run,
                consent,
                "purchase_summary",
                partial(
                    rules.count_order,
                    order_id=event.order_id,
                    revenue=event.revenue,
                    currency=event.currency,
                    occurred_at=as_utc(event.occurred_at),
                ),
                now,
            )
    await run.write(session, utcnow())


def _since_consent(consent: PartnerConsent, occurred_at: datetime) -> bool:
    return consent.granted_at is None or occurred_at >= as_utc(consent.granted_at)


@batch
async def apply_segment_changes(
    session: AsyncSession, events: Sequence[SegmentEntered | SegmentExited]
) -> None:
    """Track segment membership in the segments slices that are shared, from consent on."""
    run = await _run_for(session, events, ("segments",))
    for event in events:
        now = utcnow()
        occurred_at = as_utc(event.occurred_at)
        for consent in run.granted(event.customer_id, "segments"):
            if not _since_consent(consent, occurred_at):
                continue
            _update_slice(
                run,
                consent,
                "segments",
                partial(
                    rules.change_segment,
                    segment_id=event.segment_id,
                    name=event.segment_name,
                    entered=isinstance(event, SegmentEntered),
                    occurred_at=occurred_at,
                ),
                now,
            )
    await run.write(session, utcnow())


@batch
async def apply_points(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Credit points in the loyalty slices that are shared, from consent on (once per event id)."""
    events = [envelope.data for envelope in envelopes]
    run = await _run_for(session, events, ("loyalty",))
    for envelope in envelopes:
        event = envelope.data
        assert isinstance(event, LoyaltyPointsEarned)
        now = utcnow()
        occurred_at = as_utc(event.occurred_at)
        for consent in run.granted(event.customer_id, "loyalty"):
            if not _since_consent(consent, occurred_at):
                continue
            _update_slice(
                run,
                consent,
                "loyalty",
                partial(
                    rules.credit_points,
                    credit_id=envelope.id,
                    program=event.program,
                    points=event.points,
                    balance=event.balance,
                    occurred_at=occurred_at,
                ),
                now,
            )
    await run.write(session, utcnow())
