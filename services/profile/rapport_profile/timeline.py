"""The timeline and the disclosure ledger as the API reads them (`projection` writes them)."""

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_profile import service, store
from rapport_profile.models import Disclosure, TimelineItem, TimelinePage, aware, utc

PREFIX = "rapport."


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
