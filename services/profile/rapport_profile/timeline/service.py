"""The timeline and the disclosure ledger as the API reads them (`projection` writes them).

The reads take a `ProfileUnitOfWork`."""

from datetime import datetime

from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.types import EVENT_TYPES
from rapport_profile.errors import CustomerNotFound
from rapport_profile.shared import aware, utc
from rapport_profile.timeline.models import Disclosure, TimelineItem, TimelinePage
from rapport_profile.unit_of_work import ProfileUnitOfWork

PREFIX = "rapport."


def full_types(name: str) -> list[str]:
    """The stored types a name asks for: `rapport.order.completed.v1` that version only;
    `order.completed` every version up to the current one (older events keep theirs)."""
    name = name.strip()
    if not name.startswith(PREFIX):
        name = PREFIX + name
    last = name.rsplit(".", 1)[-1]
    if last.startswith("v") and last[1:].isdigit():
        return [name]
    current = max(
        (int(t.rsplit(".v", 1)[1]) for t in EVENT_TYPES if t.rsplit(".", 1)[0] == name),
        default=1,
    )
    return [f"{name}.v{version}" for version in range(1, current + 1)]


async def owner_of(uow: ProfileUnitOfWork, customer_id: str) -> str:
    """The id whose data answers for `customer_id`; CustomerNotFound if never seen."""
    owner = await uow.identity.resolve(customer_id)
    if owner is None:
        # Erasure leaves only tombstones: nothing answers for an erased id or its owner.
        raise CustomerNotFound(customer_id)
    if await uow.customers.get_customer(owner) is not None:
        return owner
    if await uow.timeline.has_timeline(owner) or await uow.identity.identities_of(owner):
        return owner
    raise CustomerNotFound(customer_id)


async def read_page(
    uow: ProfileUnitOfWork, customer_id: str, *, types: list[str], limit: int, cursor: str | None
) -> TimelinePage:
    """One page of the timeline, newest first."""
    owner = await owner_of(uow, customer_id)
    return await owner_timeline(uow, owner, types=types, limit=limit, cursor=cursor)


async def owner_timeline(
    uow: ProfileUnitOfWork, owner: str, *, types: list[str], limit: int, cursor: str | None
) -> TimelinePage:
    """One page of the timeline of `owner`, an id `owner_of` gave."""
    wanted = sorted(
        {full for value in types for t in value.split(",") if t.strip() for full in full_types(t)}
    )
    before = None
    if cursor:
        before = decode_cursor(cursor, datetime, str)
    rows = await uow.timeline.timeline_page(owner, types=wanted, before=before, limit=limit + 1)
    shown = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = shown[-1]
        next_cursor = encode_cursor(utc(last.occurred_at), last.id)
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


async def disclosures_about(uow: ProfileUnitOfWork, customer_id: str) -> list[Disclosure]:
    """Which partner saw what of the customer `customer_id` belongs to, the latest first."""
    return await uow.timeline.disclosures_of(await owner_of(uow, customer_id))
