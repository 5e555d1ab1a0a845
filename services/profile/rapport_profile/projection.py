"""What profile learns from the log: the timeline, orders and metrics, loyalty points,
segments and the disclosure ledger.

Each function takes a run of events (a fetch's consecutive events of one type, in log
order): it resolves their customers with one query, then writes each table with
multi-row statements, so a run costs the same number of statements whatever its length.
Nothing here changes who owns an id or whether it was erased (only the API merges and
erases), so owners resolved at the start of a run hold for all of it.
"""

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.codec import Envelope
from rapport_events.types import (
    LoyaltyPointsEarned,
    OrderCompleted,
    PartnerDataDisclosed,
    SegmentEntered,
    SegmentExited,
)
from rapport_profile import service, store
from rapport_profile.models import utc


async def owners_of(session: AsyncSession, customer_ids: Collection[str]) -> dict[str, str | None]:
    """Who each incoming event's customer id belongs to now; None when it was erased."""
    answers = await store.owners_and_erasures(session, set(customer_ids), service.ALIAS)
    return {subject: None if erased else owner for subject, (owner, erased) in answers.items()}


async def record_timeline(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Put each event on its customer's timeline, once."""
    owners = await owners_of(session, {envelope.data.customer_id for envelope in envelopes})
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


async def record_orders(
    session: AsyncSession, events: Sequence[OrderCompleted], topic: str
) -> None:
    """Count each order in its customer's metrics (an order id counts once, the first time).

    The customers who gained an order get their value recomputed and published once each,
    however many of the run's orders were theirs.
    """
    owners = await owners_of(session, {event.customer_id for event in events})
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        owner = owners[event.customer_id]
        if owner is None or event.order_id in rows:
            continue
        rows[event.order_id] = {
            "order_id": event.order_id,
            "customer_id": owner,
            "subject_id": event.customer_id,
            "revenue": event.revenue,
            "cost": event.cost,
            "currency": event.currency,
            "items": sum(item.quantity for item in event.items),
            "occurred_at": utc(event.occurred_at),
        }
    if not rows:
        return
    # An order already in the table is skipped by the insert: only real gains refresh.
    gained = await store.add_orders(session, list(rows.values()))
    if gained:
        await service.refresh_metrics_of(session, gained, topic)


async def record_points(session: AsyncSession, events: Sequence[LoyaltyPointsEarned]) -> None:
    """Keep the loyalty balance current (the reported balance wins when there is one)."""
    owners = await owners_of(session, {event.customer_id for event in events})
    known = {owner for owner in owners.values() if owner is not None}
    before = await store.loyalty_points_of(session, known)
    balances: dict[str, int] = {}
    for event in events:
        owner = owners[event.customer_id]
        if owner is None:
            continue
        current = balances.get(owner, before.get(owner, 0))
        balances[owner] = event.balance if event.balance is not None else current + event.points
    if not balances:
        return
    now = utcnow()
    rows = [
        {
            "customer_id": owner,
            "orders": 0,
            "revenue": Decimal(0),
            "profit": Decimal(0),
            "first_order_at": None,
            "last_order_at": None,
            "loyalty_points": points,
            "updated_at": now,
        }
        for owner, points in sorted(balances.items())
    ]
    await store.upsert_metrics(session, rows, columns=("loyalty_points",))


async def record_segments(
    session: AsyncSession, events: Sequence[SegmentEntered | SegmentExited]
) -> None:
    """Keep the customer's segment memberships as campaign reports them."""
    owners = await owners_of(session, {event.customer_id for event in events})
    # Only the last change of a (customer, segment) in the run decides its membership.
    latest: dict[tuple[str, str], SegmentEntered | SegmentExited] = {}
    for event in events:
        owner = owners[event.customer_id]
        if owner is not None:
            latest[(owner, event.segment_id)] = event
    exited = [key for key, event in latest.items() if isinstance(event, SegmentExited)]
    entered = [
        {
            "customer_id": owner,
            "segment_id": segment_id,
            "segment_name": event.segment_name,
            "entered_at": utc(event.occurred_at),
        }
        for (owner, segment_id), event in latest.items()
        if isinstance(event, SegmentEntered)
    ]
    if exited:
        await store.delete_segments(session, exited)
    if entered:
        await store.set_segments(session, entered)


async def record_disclosures(
    session: AsyncSession, events: Sequence[PartnerDataDisclosed], envelopes: Sequence[Envelope]
) -> None:
    """Keep the audit of what a partner saw (an event id once)."""
    owners = await owners_of(session, {event.customer_id for event in events})
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
