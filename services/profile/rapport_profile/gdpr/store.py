"""Queries of erasure and export: any domain's rows of a customer, and their outbox rows."""

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    delete,
    func,
    or_,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.outbox import OutboxMessage
from rapport_profile.gdpr.models import Erasure
from rapport_profile.shared import _present


async def get_erasure(session: AsyncSession, customer_id: str) -> Erasure | None:
    return await session.get(Erasure, customer_id)


async def erased_among(session: AsyncSession, customer_ids: Collection[str]) -> set[str]:
    """Which of these ids were erased."""
    return await _present(session, col(Erasure.customer_id), customer_ids)


async def rows_of(session: AsyncSession, model: Any, column: str, customer_id: str) -> list[Any]:
    result = await session.exec(select(model).where(getattr(model, column) == customer_id))
    return list(result.all())


async def delete_rows(session: AsyncSession, model: Any, column: str, customer_id: str) -> None:
    await session.exec(delete(model).where(getattr(model, column) == customer_id))


async def outbox_id(session: AsyncSession, event_id: str) -> int | None:
    """The outbox row id of an event this service published, if the row is still there."""
    result = await session.exec(
        select(OutboxMessage.id).where(col(OutboxMessage.event_id) == event_id)
    )
    return result.first()


async def delete_outbox_rows(
    session: AsyncSession, keys: Sequence[str], *, up_to_id: int | None = None
) -> int:
    """Delete the outbox rows about `keys` that are sent or parked, or (given) at or before
    `up_to_id`; returns how many. A parked row about an erased customer must not go out
    when unparked."""
    query = delete(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
    if up_to_id is None:
        query = query.where(
            or_(col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.parked_at).is_not(None))
        )
    else:
        query = query.where(col(OutboxMessage.id) <= up_to_id)
    return int((await session.exec(query)).rowcount)


async def count_outbox_rows(session: AsyncSession, keys: Sequence[str]) -> int:
    result = await session.exec(
        select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.key).in_(keys))
    )
    return int(result.one())
