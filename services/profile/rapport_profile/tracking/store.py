"""Queries of the tracking API: the messageIds already taken.

`TrackingStore` is what the tracking use cases ask of it; `SqlTrackingStore` answers on the
transaction's session, and `rapport_profile.testing` has the in-memory fake. Who a call is
about is asked of the identity, customer and gdpr stores."""

from collections.abc import Collection
from typing import Protocol

from sqlmodel import SQLModel, col

from rapport_events.unit_of_work import SqlStore
from rapport_profile.shared import _present
from rapport_profile.tracking.models import TrackedMessage


class TrackingStore(Protocol):
    def add(self, row: SQLModel) -> None: ...

    async def seen_message_ids(self, message_ids: Collection[str]) -> set[str]:
        """Which of these tracking messageIds were applied before (one set-based lookup)."""
        ...


class SqlTrackingStore(SqlStore):
    async def seen_message_ids(self, message_ids: Collection[str]) -> set[str]:
        return await _present(self.session, col(TrackedMessage.message_id), message_ids)
