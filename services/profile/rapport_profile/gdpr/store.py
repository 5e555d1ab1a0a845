"""Queries of erasure and export: any domain's rows of a customer, and their outbox rows.

`GdprStore` is what the export, erasure and tracking use cases ask of it; `SqlGdprStore`
answers on the transaction's session (the erasure projection and the erasure's later checks
build it on theirs), and `rapport_profile.testing` has the in-memory fake. Only those later
steps ask `outbox_id`, `count_outbox_rows` and `delete_sent_outbox_rows(..., up_to_id=...)`,
so the Protocol and the fake leave them out."""

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from sqlalchemy import (
    delete,
    func,
    or_,
)
from sqlmodel import SQLModel, col, select

from rapport_events import outbox
from rapport_events.outbox import OutboxMessage
from rapport_events.unit_of_work import SqlStore
from rapport_profile.gdpr.models import Erasure
from rapport_profile.shared import _present


class GdprStore(Protocol):
    def add(self, row: SQLModel) -> None: ...

    async def get_erasure(self, customer_id: str) -> Erasure | None: ...

    async def erased_among(self, customer_ids: Collection[str]) -> set[str]:
        """Which of these ids were erased (one set-based lookup)."""
        ...

    async def rows_of(self, model: Any, column: str, customer_id: str) -> list[Any]:
        """The rows of `model` whose `column` names the customer."""
        ...

    async def delete_rows(self, model: Any, column: str, customer_id: str) -> None: ...

    async def delete_sent_outbox_rows(self, keys: Sequence[str]) -> int:
        """Delete the outbox rows about `keys` already sent or parked; returns how many."""
        ...

    async def shred(self, customer_id: str) -> None:
        """Make the log's copies of the customer's personal fields unreadable."""
        ...


class SqlGdprStore(SqlStore):
    async def get_erasure(self, customer_id: str) -> Erasure | None:
        return await self.session.get(Erasure, customer_id)

    async def erased_among(self, customer_ids: Collection[str]) -> set[str]:
        return await _present(self.session, col(Erasure.customer_id), customer_ids)

    async def rows_of(self, model: Any, column: str, customer_id: str) -> list[Any]:
        result = await self.session.exec(select(model).where(getattr(model, column) == customer_id))
        return list(result.all())

    async def delete_rows(self, model: Any, column: str, customer_id: str) -> None:
        await self.session.exec(delete(model).where(getattr(model, column) == customer_id))

    async def delete_sent_outbox_rows(
        self, keys: Sequence[str], *, up_to_id: int | None = None
    ) -> int:
        """Delete the outbox rows about `keys` that are sent or parked, or (given) at or before
        `up_to_id`; returns how many. A parked row about an erased customer must not go out
        when unparked."""
        query = delete(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
        if up_to_id is None:
            query = query.where(
                or_(
                    col(OutboxMessage.sent_at).is_not(None),
                    col(OutboxMessage.parked_at).is_not(None),
                )
            )
        else:
            query = query.where(col(OutboxMessage.id) <= up_to_id)
        return int((await self.session.exec(query)).rowcount)

    async def shred(self, customer_id: str) -> None:
        await outbox.shred(self.session, customer_id)

    async def outbox_id(self, event_id: str) -> int | None:
        """The outbox row id of an event this service published, if the row is still there."""
        result = await self.session.exec(
            select(OutboxMessage.id).where(col(OutboxMessage.event_id) == event_id)
        )
        return result.first()

    async def count_outbox_rows(self, keys: Sequence[str]) -> int:
        result = await self.session.exec(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
        )
        return int(result.one())
