"""What profile learns from the log: the timeline, orders, segments, disclosures."""

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.types import (
    LoyaltyPointsEarned,
    OrderCompleted,
    PartnerDataDisclosed,
    SegmentEntered,
    SegmentExited,
)
from rapport_profile import service, store
from rapport_profile.models import (
    CustomerMetrics,
    Disclosure,
    Order,
    SegmentMembership,
    TimelineEntry,
    TimelineItem,
    TimelinePage,
    aware,
    utc,
)

PREFIX = "rapport."


async def owner_of(session: AsyncSession, customer_id: str) -> str | None:
    """Who an incoming event belongs to now; None when the customer was erased."""
    owner, erased = await store.owner_and_erasure(session, customer_id, service.ALIAS)
    return None if erased else owner


async def record(session: AsyncSession, envelope: Envelope) -> None:
    """Put any event on its customer's timeline, once."""
    event = envelope.data
    owner = await owner_of(session, event.customer_id)
    if owner is None:
        return
    await store.add_timeline_entry(
        session,
        TimelineEntry(
            id=envelope.id,
            customer_id=owner,
            subject_id=event.customer_id,
            type=envelope.type,
            source=envelope.source,
            occurred_at=utc(event.occurred_at),
            data=event.model_dump(mode="json", exclude={"customer_id", "occurred_at"}),
        ),
    )


async def record_order(session: AsyncSession, event: OrderCompleted) -> None:
    """Count an order in the customer's metrics (an order id counts once)."""
    owner = await owner_of(session, event.customer_id)
    if owner is None or await store.get_order(session, event.order_id) is not None:
        return
    store.add(
        session,
        Order(
            order_id=event.order_id,
            customer_id=owner,
            subject_id=event.customer_id,
            revenue=event.revenue,
            cost=event.cost,
            currency=event.currency,
            items=sum(item.quantity for item in event.items),
            occurred_at=utc(event.occurred_at),
        ),
    )
    await session.flush()
    await service.refresh_metrics(session, owner)


async def record_points(session: AsyncSession, event: LoyaltyPointsEarned) -> None:
    """Keep the loyalty balance current (the reported balance wins when there is one)."""
    owner = await owner_of(session, event.customer_id)
    if owner is None:
        return
    metrics = await store.get_metrics(session, owner) or CustomerMetrics(customer_id=owner)
    metrics.loyalty_points = (
        event.balance if event.balance is not None else metrics.loyalty_points + event.points
    )
    session.add(metrics)


async def record_segment(session: AsyncSession, event: SegmentEntered | SegmentExited) -> None:
    """Keep the customer's segment memberships as campaign reports them."""
    owner = await owner_of(session, event.customer_id)
    if owner is None:
        return
    await store.delete_segment(session, owner, event.segment_id)
    if isinstance(event, SegmentEntered):
        store.add(
            session,
            SegmentMembership(
                customer_id=owner,
                segment_id=event.segment_id,
                segment_name=event.segment_name,
                entered_at=utc(event.occurred_at),
            ),
        )


async def record_disclosure(
    session: AsyncSession, event: PartnerDataDisclosed, envelope: Envelope
) -> None:
    """Keep the audit of what a partner saw."""
    owner = await owner_of(session, event.customer_id)
    if owner is None or await session.get(Disclosure, envelope.id) is not None:
        return
    store.add(
        session,
        Disclosure(
            id=envelope.id,
            customer_id=owner,
            subject_id=event.customer_id,
            partner_id=event.partner_id,
            partner_name=event.partner_name,
            partner_ref=event.partner_ref,
            slices=list(event.slices),
            fields=list(event.fields),
            purpose=event.purpose,
            consent_version=event.consent_version,
            request_id=event.request_id,
            disclosed_at=utc(event.occurred_at),
        ),
    )


# --- reading -----------------------------------------------------------------------------


def full_type(name: str) -> str:
    """`order.completed` and `rapport.order.completed.v1` both name the same type."""
    name = name.strip()
    if not name.startswith(PREFIX):
        name = PREFIX + name
    last = name.rsplit(".", 1)[-1]
    if not (last.startswith("v") and last[1:].isdigit()):
        name += ".v1"
    return name


async def known_owner(session: AsyncSession, customer_id: str) -> str:
    """The id whose data answers for `customer_id`; CustomerNotFound if never seen."""
    owner = await service.resolve(session, customer_id)
    if await store.get_customer(session, owner) is not None:
        return owner
    if await store.has_timeline(session, owner) or await store.identities_of(session, owner):
        return owner
    raise service.CustomerNotFound(customer_id)


async def page(
    session: AsyncSession, customer_id: str, *, types: list[str], limit: int, cursor: str | None
) -> TimelinePage:
    """One page of the timeline, newest first."""
    owner = await known_owner(session, customer_id)
    wanted = sorted({full_type(t) for value in types for t in value.split(",") if t.strip()})
    before = None
    if cursor:
        at, event_id = service.decode_cursor(cursor, 2)
        try:
            before = (utc(datetime.fromisoformat(at)), event_id)
        except ValueError as error:
            raise service.InvalidRequest("cursor is not one this service gave out") from error
    rows = await store.timeline_page(session, owner, types=wanted, before=before, limit=limit + 1)
    shown = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = shown[-1]
        next_cursor = service.encode_cursor([last.occurred_at.isoformat(), last.id])
    return TimelinePage(
        customer_id=owner,
        items=[
            TimelineItem(
                id=row.id,
                type=row.type,
                source=row.source,
                occurred_at=aware(row.occurred_at),
                data=row.data,
            )
            for row in shown
        ],
        next_cursor=next_cursor,
    )


async def disclosures(session: AsyncSession, customer_id: str) -> list[Disclosure]:
    return await store.disclosures_of(session, customer_id)
