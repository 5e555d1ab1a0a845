"""What the log tells customers: segment membership (campaign's segment events)."""

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import batch
from rapport_events.types import (
    SegmentEntered,
    SegmentExited,
)
from rapport_profile.customers import store
from rapport_profile.identity import service as identity_service
from rapport_profile.shared import utc


@batch
async def record_segments(
    session: AsyncSession, events: Sequence[SegmentEntered | SegmentExited]
) -> None:
    """Keep the customer's segment memberships as campaign reports them."""
    owners = await identity_service.resolve_all(session, {event.customer_id for event in events})
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
