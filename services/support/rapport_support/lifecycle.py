"""What touches every domain at once: a merge of two customers, an erasure, the export.

Merges and erasures are rare and move many tables: they come one event at a time, on the ORM.
"""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, or_, update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased, CustomerMerged
from rapport_support.customers import store as customer_store
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.mentions import store as mention_store
from rapport_support.mentions.models import SupportMention, SupportMentionReply, SupportReplyAttempt
from rapport_support.products import store as product_store
from rapport_support.products.models import SupportProduct
from rapport_support.shared import aware
from rapport_support.tickets.models import (
    SupportSlaBreach,
    SupportTicket,
    SupportTicketComment,
    SupportTicketLink,
)
from rapport_support.tickets.store import SqlTicketStore


class CustomerExport(BaseModel):
    """Everything support holds about one customer, table by table."""

    service: str = "support"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# --- merge ---------------------------------------------------------------------------------------


async def apply_merge(session: AsyncSession, event: CustomerMerged) -> None:
    """Move the duplicate's rows to the surviving customer; later events for it follow."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await customer_store.merged_into(session, merged) == survivor:
        return
    if await customer_store.is_erased(session, survivor):
        await erase_customer(session, merged, event.occurred_at)
        return
    merged_customer = await customer_store.get_customer(session, merged)
    await move_customer_rows(session, merged, survivor)
    if merged_customer is not None:
        if await customer_store.get_customer(session, survivor) is None:
            # The survivor's registration has not arrived; keep who the person is meanwhile.
            customer_store.add_customer(
                session,
                SupportCustomer(
                    **merged_customer.model_dump(exclude={"customer_id"}), customer_id=survivor
                ),
            )
        await session.delete(merged_customer)
    customer_store.add(
        session,
        SupportMergedCustomer(merged_id=merged, customer_id=survivor, merged_at=event.occurred_at),
    )
    await session.flush()


async def move_customer_rows(session: AsyncSession, from_id: str, to_id: str) -> None:
    """Re-key everything held under `from_id` to `to_id` (a merge)."""
    for table in (SupportProduct, SupportTicket, SupportHandle):
        await session.exec(
            update(table).where(col(table.customer_id) == from_id).values(customer_id=to_id)
        )
    await session.exec(
        update(SupportMention)
        .where(col(SupportMention.customer_id) == from_id)
        .values(customer_id=to_id, subject_id=to_id)
    )
    await session.exec(
        update(SupportMergedCustomer)
        .where(col(SupportMergedCustomer.customer_id) == from_id)
        .values(customer_id=to_id)
    )
    await session.exec(delete(SupportConsent).where(col(SupportConsent.customer_id) == from_id))


# --- erasure -------------------------------------------------------------------------------------


async def erase_customer(session: AsyncSession, customer_id: str, at: datetime) -> None:
    """Delete everything about the customer (and duplicates merged into them); keep tombstones."""
    erased = [customer_id] + [
        alias.merged_id for alias in await customer_store.aliases_of(session, customer_id)
    ]
    await delete_customer_rows(session, customer_id)
    for erased_id in erased:
        if not await customer_store.is_erased(session, erased_id):
            customer_store.add(session, ErasedCustomer(customer_id=erased_id, erased_at=at))
    # Sent events about them (names, handles, free text) go now, not after the retention.
    await outbox.delete_sent(session, erased)
    checkpoint_after_commit(session)
    await session.flush()


async def apply_erasure(session: AsyncSession, event: CustomerErased) -> None:
    """GDPR erasure: nothing personal stays, only the id as a tombstone."""
    await erase_customer(session, event.customer_id, event.occurred_at)


async def delete_customer_rows(session: AsyncSession, customer_id: str) -> None:
    """Delete every row about the customer: profile, consents, products, tickets, mentions."""
    tickets = select(SupportTicket.id).where(SupportTicket.customer_id == customer_id)
    mentions = select(SupportMention.id).where(SupportMention.customer_id == customer_id)
    replies = select(SupportMentionReply.id).where(
        col(SupportMentionReply.mention_id).in_(mentions)
    )
    await session.exec(
        delete(SupportReplyAttempt).where(col(SupportReplyAttempt.reply_id).in_(replies))
    )
    await session.exec(
        delete(SupportMentionReply).where(col(SupportMentionReply.mention_id).in_(mentions))
    )
    await session.exec(delete(SupportMention).where(col(SupportMention.customer_id) == customer_id))
    await session.exec(
        delete(SupportTicketComment).where(col(SupportTicketComment.ticket_id).in_(tickets))
    )
    await session.exec(
        delete(SupportTicketLink).where(
            or_(
                col(SupportTicketLink.ticket_id).in_(tickets),
                col(SupportTicketLink.linked_ticket_id).in_(tickets),
            )
        )
    )
    await session.exec(delete(SupportSlaBreach).where(col(SupportSlaBreach.ticket_id).in_(tickets)))
    # Another customer's ticket merged into one of these keeps only "duplicate of <id>".
    await session.exec(
        update(SupportTicket)
        .where(col(SupportTicket.duplicate_of).in_(tickets))
        .values(duplicate_of=None)
    )
    for table in (SupportTicket, SupportProduct, SupportHandle, SupportConsent):
        await session.exec(delete(table).where(col(table.customer_id) == customer_id))
    await session.exec(
        delete(SupportMergedCustomer).where(col(SupportMergedCustomer.customer_id) == customer_id)
    )
    await session.exec(
        delete(SupportCustomer).where(col(SupportCustomer.customer_id) == customer_id)
    )


# --- export --------------------------------------------------------------------------------------


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """Everything support holds about the customer (empty lists when nothing)."""
    rows = await export_rows(session, customer_id)
    return CustomerExport(
        customer_id=customer_id,
        records={table: [_exported(row) for row in found] for table, found in rows.items()},
    )


def _exported(row: SQLModel) -> dict[str, Any]:
    values = row.model_dump()
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = aware(value).isoformat()
        elif isinstance(value, date):
            values[name] = value.isoformat()
    return values


async def export_rows(session: AsyncSession, customer_id: str) -> dict[str, list[SQLModel]]:
    """Every row support holds about the customer, by table."""
    ticket_store = SqlTicketStore(session)
    tickets = await ticket_store.tickets_of(customer_id)
    ticket_ids = [ticket.id for ticket in tickets]
    mentions = await mention_store.mentions_of(session, customer_id)
    replies = await mention_store.replies_for(session, [mention.id for mention in mentions])
    customer = await customer_store.get_customer(session, customer_id)
    breaches = await ticket_store.breaches_for(ticket_ids)
    return {
        "support_customers": [customer] if customer is not None else [],
        "support_consents": list(await customer_store.consents_of(session, customer_id)),
        "support_handles": list(await customer_store.handles_of(session, customer_id)),
        "support_merged_customers": list(await customer_store.aliases_of(session, customer_id)),
        "support_products": list(await product_store.products_of(session, customer_id)),
        "support_tickets": list(tickets),
        "support_ticket_comments": list(await ticket_store.comments_for(ticket_ids)),
        "support_ticket_links": list(await ticket_store.links_for(ticket_ids)),
        "support_sla_breaches": [b for found in breaches.values() for b in found],
        "support_mentions": list(mentions),
        "support_mention_replies": list(replies),
        "support_reply_attempts": list(
            await mention_store.attempts_for(session, [reply.id for reply in replies])
        ),
    }
