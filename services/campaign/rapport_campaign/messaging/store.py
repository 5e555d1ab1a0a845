"""Every query of messages: the sender's leases, caps, cancellations and funnel counts."""

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.messaging.models import Message
from rapport_campaign.shared import BULK, all_rows
from rapport_campaign.tracking import store as tracking_store

MESSAGES = Message.__table__  # type: ignore[attr-defined]


async def release_held_messages(
    session: AsyncSession, campaign_id: str, variant: str, now: datetime
) -> int:
    """The messages held back for an A/B decision go out with the winning variant."""
    result = await session.exec(
        update(Message)
        .where(col(Message.campaign_id) == campaign_id, col(Message.status) == "held")
        .values(status="pending", variant=variant, due_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BULK):
        await session.exec(insert(MESSAGES), params=rows[start : start + BULK])


async def get_message(session: AsyncSession, message_id: str) -> Message | None:
    return await session.get(Message, message_id)


# A message's reason while a sender hands it to its channel, and once that sender's lease ran
# out with no outcome recorded.
IN_FLIGHT = "handed to the channel, outcome not recorded yet"
IN_DOUBT = (
    "outcome unknown: the sender stopped after handing it to the channel; "
    "not sent again, so it cannot arrive twice"
)


async def claim_due_messages(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[Message]:
    """Lease up to `limit` due messages to this sender until `lease_until`, in one statement.

    Due means pending and due, or claimed by a sender whose lease ran out (it died mid-send).
    On PostgreSQL the rows another sender is claiming are skipped (SKIP LOCKED), so replicas
    share the work without waiting for each other; SQLite lets one writer in at a time.
    The lease's end is the claim's token: `renew_message_lease` and the outcome check it.

    A message whose lease ran out after it was handed to its channel (`IN_FLIGHT`: the
    sender died between the channel's answer and recording it) is not claimed again: the
    channel may have taken it, and a second copy would reach the customer. It is recorded
    as failed, `IN_DOUBT`, so each message reaches the channel at most once.
    """
    await session.exec(
        update(Message)
        .where(
            col(Message.status) == "sending",
            col(Message.due_at) <= now,
            col(Message.reason) == IN_FLIGHT,
        )
        .values(status="failed", reason=IN_DOUBT)
    )
    due = (
        select(col(Message.id))
        .where(col(Message.status).in_(("pending", "sending")), col(Message.due_at) <= now)
        .order_by(col(Message.due_at), col(Message.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.exec(
        update(Message)
        .where(col(Message.id).in_(due.scalar_subquery()))
        .values(status="sending", due_at=lease_until)
        .returning(col(Message.id))
    )
    claimed = list(result.scalars().all())  # type: ignore[attr-defined]
    if not claimed:
        return []
    rows = await session.exec(
        select(Message)
        .where(col(Message.id).in_(claimed))
        .order_by(col(Message.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def renew_message_lease(
    session: AsyncSession, message_id: str, lease: datetime, now: datetime, lease_until: datetime
) -> bool:
    """Extend this sender's lease on a message; False when it ran out or another sender has it."""
    result = await session.exec(
        update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == "sending",
            col(Message.due_at) == lease,
            col(Message.due_at) > now,
        )
        .values(due_at=lease_until)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def sent_since(session: AsyncSession, customer_id: str, channel: str, since: datetime) -> int:
    result = await session.exec(
        select(func.count()).where(
            Message.customer_id == customer_id,
            Message.channel == channel,
            col(Message.sent_at) >= since,
        )
    )
    return int(result.one())


async def unfinished_messages(session: AsyncSession, campaign_id: str) -> int:
    result = await session.exec(
        select(func.count()).where(
            Message.campaign_id == campaign_id,
            col(Message.status).in_(("held", "pending", "sending")),
        )
    )
    return int(result.one())


async def cancel_messages(session: AsyncSession, campaign_id: str) -> None:
    await session.exec(
        update(Message)
        .where(
            col(Message.campaign_id) == campaign_id, col(Message.status).in_(("held", "pending"))
        )
        .values(status="cancelled", reason="campaign cancelled")
    )


async def cancel_customer_messages(session: AsyncSession, customer_id: str) -> None:
    await session.exec(
        update(Message)
        .where(
            col(Message.customer_id) == customer_id,
            col(Message.status).in_(("held", "pending", "sending")),
        )
        .values(status="cancelled", reason="customer erased")
    )


async def message_by_offer_code(session: AsyncSession, code: str) -> Message | None:
    result = await session.exec(select(Message).where(Message.offer_code == code))
    return result.first()


async def campaign_funnel(session: AsyncSession, campaign_id: str) -> list[dict[str, Any]]:
    """Per variant: messages by status and how many were delivered, opened, clicked, redeemed."""
    m = MESSAGES.c
    result = await all_rows(
        session,
        sa_select(
            m.variant,
            m.status,
            func.count(),
            func.count(m.delivered_at),
            func.count(m.opened_at),
            func.count(m.clicked_at),
            func.count(m.redeemed_at),
        )
        .where(m.campaign_id == campaign_id)
        .group_by(m.variant, m.status),
    )
    return [
        {
            "variant": variant,
            "status": status,
            "count": int(count),
            "delivered": int(delivered),
            "opened": int(opened),
            "clicked": int(clicked),
            "redeemed": int(redeemed),
        }
        for variant, status, count, delivered, opened, clicked, redeemed in result
    ]


async def variant_results(
    session: AsyncSession, campaign_id: str
) -> dict[str, tuple[int, int, int]]:
    """Per variant of the test phase: sent, clicked and converted messages."""
    m = MESSAGES.c
    sent = await session.exec(
        select(m.variant, func.count(m.sent_at), func.count(m.clicked_at))
        .where(m.campaign_id == campaign_id, m.variant.is_not(None))
        .group_by(m.variant)
    )
    results = {variant: (int(s), int(c), 0) for variant, s, c in sent.all()}
    for variant, converted, _revenue in await tracking_store.campaign_conversions(
        session, campaign_id
    ):
        if variant in results:
            s, c, _ = results[variant]
            results[variant] = (s, c, converted)
    return results
