"""Sales' events go to the outbox in the caller's transaction."""

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import Event
from rapport_events.outbox import add_all

SOURCE = "/services/sales"


async def publish(session: AsyncSession, events: Sequence[Event], topic: str) -> None:
    """Write `events` to the outbox in order, one statement."""
    await add_all(session, events, source=SOURCE, topic=topic)


def account_subject(account_id: str) -> str:
    """The log key of an account's own events: accounts are customers too, companies ones."""
    return f"account:{account_id}"[:64]
