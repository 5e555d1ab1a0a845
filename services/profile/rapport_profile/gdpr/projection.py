"""What the log tells gdpr: an erased customer leaves nothing behind, the outbox included."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.codec import Envelope
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased
from rapport_profile.gdpr import service
from rapport_profile.timeline import projection as timeline_projection


async def apply_erasure(event: CustomerErased, envelope: Envelope, session: AsyncSession) -> None:
    """customer.erased goes on the timeline, then nothing else about the customer remains."""
    await timeline_projection.record_timeline(session, [envelope])
    await service.purge(session, event.customer_id)
    await service.purge_published(session, event.customer_id, envelope.id)
    # SQLite's write-ahead log still holds the deleted bytes until a checkpoint.
    checkpoint_after_commit(session)
