"""Queries of the tracking API."""

from collections.abc import Collection

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_profile.shared import _present
from rapport_profile.tracking.models import TrackedMessage


async def seen_message_ids(session: AsyncSession, message_ids: Collection[str]) -> set[str]:
    """Which of these tracking messageIds were applied before."""
    return await _present(session, col(TrackedMessage.message_id), message_ids)
