"""Every query of messages: the sender's leases, caps, cancellations and funnel counts.

`MessageStore` is what the sender, broadcasts, journeys, the links, attribution, the reports
and a merge, an erasure and the export ask of the messaging domain; `SqlMessageStore`
answers on the transaction's session, and `rapport_campaign.testing` has the in-memory fake.
"""

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from rapport_campaign.messaging.models import Message
from rapport_campaign.shared import BULK, all_rows, rows_of, update_rows
from rapport_campaign.tracking import store as tracking_store
from rapport_events.unit_of_work import SqlStore

MESSAGES = Message.__table__  # type: ignore[attr-defined]

# A message's reason while a sender hands it to its channel, and once that sender's lease ran
# out with no outcome recorded.
IN_FLIGHT = "handed to the channel, outcome not recorded yet"
IN_DOUBT = (
    "outcome unknown: the sender stopped after handing it to the channel; "
    "not sent again, so it cannot arrive twice"
)

# What an erased customer's messages keep of them: nothing.
ANONYMOUS_MESSAGE: dict[str, Any] = {
    "customer_id": None,
    "address": None,
    "offer_code": None,
    "context": {},
    "redeemed_order_id": None,
}


class MessageStore(Protocol):
    """A message read, messages queued, leased to a sender, held back for an A/B decision,
    released or cancelled, counted; a customer's messages read, moved or anonymised."""

    def add(self, row: Message) -> None: ...

    async def get_message(self, message_id: str) -> Message | None: ...

    async def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        """New messages, as dicts of their columns."""
        ...

    async def claim_due_messages(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[Message]:
        """Up to `limit` due messages, leased to this sender until `lease_until` (their
        `due_at`), in id order; a lapsed claim handed to its channel becomes `IN_DOUBT`."""
        ...

    async def renew_message_lease(
        self, message_id: str, lease: datetime, now: datetime, lease_until: datetime
    ) -> bool:
        """Extend this sender's lease on a message; False when it ran out or another sender
        has it."""
        ...

    async def sent_since(self, customer_id: str, channel: str, since: datetime) -> int:
        """How many messages the customer was sent on the channel since then (the cap)."""
        ...

    async def cancel_messages(self, campaign_id: str) -> None:
        """The campaign's held and pending messages are cancelled."""
        ...

    async def release_held_messages(self, campaign_id: str, variant: str, now: datetime) -> int:
        """The held messages go out with `variant`, due now; how many."""
        ...

    async def unfinished_messages(self, campaign_id: str) -> int:
        """The campaign's messages held, pending or being sent."""
        ...

    async def variant_results(self, campaign_id: str) -> dict[str, tuple[int, int, int]]:
        """Per variant of the test phase: sent, clicked and converted messages."""
        ...

    async def campaign_funnel(self, campaign_id: str) -> list[dict[str, Any]]:
        """Per variant and status: messages, and how many were delivered, opened, clicked,
        redeemed."""
        ...

    async def message_by_offer_code(self, code: str) -> Message | None: ...

    async def messages_of(self, customer_id: str) -> list[Message]: ...

    async def move_messages(self, from_id: str, to_id: str) -> None:
        """The messages of `from_id` become `to_id`'s."""
        ...

    async def cancel_customer_messages(self, customer_id: str) -> None:
        """The customer's held, pending and sending messages are cancelled."""
        ...

    async def anonymise_messages(self, customer_id: str) -> None:
        """The customer's messages stay for the campaign's counts, without who they went
        to, where, their offer code, data or order."""
        ...


class SqlMessageStore(SqlStore):
    async def get_message(self, message_id: str) -> Message | None:
        return await self.session.get(Message, message_id)

    async def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), BULK):
            await self.session.exec(insert(MESSAGES), params=rows[start : start + BULK])

    async def claim_due_messages(
        self, now: datetime, limit: int, lease_until: datetime
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
        await self.session.exec(
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
        result = await self.session.exec(
            update(Message)
            .where(col(Message.id).in_(due.scalar_subquery()))
            .values(status="sending", due_at=lease_until)
            .returning(col(Message.id))
        )
        claimed = list(result.scalars().all())  # type: ignore[attr-defined]
        if not claimed:
            return []
        rows = await self.session.exec(
            select(Message)
            .where(col(Message.id).in_(claimed))
            .order_by(col(Message.id))
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def renew_message_lease(
        self, message_id: str, lease: datetime, now: datetime, lease_until: datetime
    ) -> bool:
        result = await self.session.exec(
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

    async def sent_since(self, customer_id: str, channel: str, since: datetime) -> int:
        result = await self.session.exec(
            select(func.count()).where(
                Message.customer_id == customer_id,
                Message.channel == channel,
                col(Message.sent_at) >= since,
            )
        )
        return int(result.one())

    async def cancel_messages(self, campaign_id: str) -> None:
        await self.session.exec(
            update(Message)
            .where(
                col(Message.campaign_id) == campaign_id,
                col(Message.status).in_(("held", "pending")),
            )
            .values(status="cancelled", reason="campaign cancelled")
        )

    async def release_held_messages(self, campaign_id: str, variant: str, now: datetime) -> int:
        result = await self.session.exec(
            update(Message)
            .where(col(Message.campaign_id) == campaign_id, col(Message.status) == "held")
            .values(status="pending", variant=variant, due_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def unfinished_messages(self, campaign_id: str) -> int:
        result = await self.session.exec(
            select(func.count()).where(
                Message.campaign_id == campaign_id,
                col(Message.status).in_(("held", "pending", "sending")),
            )
        )
        return int(result.one())

    async def variant_results(self, campaign_id: str) -> dict[str, tuple[int, int, int]]:
        m = MESSAGES.c
        sent = await self.session.exec(
            select(m.variant, func.count(m.sent_at), func.count(m.clicked_at))
            .where(m.campaign_id == campaign_id, m.variant.is_not(None))
            .group_by(m.variant)
        )
        results = {variant: (int(s), int(c), 0) for variant, s, c in sent.all()}
        for variant, converted, _revenue in await tracking_store.campaign_conversions(
            self.session, campaign_id
        ):
            if variant in results:
                s, c, _ = results[variant]
                results[variant] = (s, c, converted)
        return results

    async def campaign_funnel(self, campaign_id: str) -> list[dict[str, Any]]:
        m = MESSAGES.c
        result = await all_rows(
            self.session,
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

    async def message_by_offer_code(self, code: str) -> Message | None:
        result = await self.session.exec(select(Message).where(Message.offer_code == code))
        return result.first()

    async def messages_of(self, customer_id: str) -> list[Message]:
        return await rows_of(self.session, Message, customer_id)

    async def move_messages(self, from_id: str, to_id: str) -> None:
        await update_rows(self.session, Message, from_id, {"customer_id": to_id})

    async def cancel_customer_messages(self, customer_id: str) -> None:
        await self.session.exec(
            update(Message)
            .where(
                col(Message.customer_id) == customer_id,
                col(Message.status).in_(("held", "pending", "sending")),
            )
            .values(status="cancelled", reason="customer erased")
        )

    async def anonymise_messages(self, customer_id: str) -> None:
        await update_rows(self.session, Message, customer_id, ANONYMOUS_MESSAGE)
