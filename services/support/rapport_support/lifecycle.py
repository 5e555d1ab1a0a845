"""What touches every domain at once: a merge of two customers, an erasure, the export, on
the unit of work (`SupportUnitOfWork`).

Merges and erasures are rare and move many tables: they come one event at a time, and
their handlers build the SQL unit of work on the consumer's session.
"""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.types import CustomerErased, CustomerMerged
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportCustomer,
    SupportMergedCustomer,
)
from rapport_support.settings import Settings
from rapport_support.shared import aware
from rapport_support.unit_of_work import SqlSupportUnitOfWork, SupportUnitOfWork


class CustomerExport(BaseModel):
    """Everything support holds about one customer, table by table."""

    service: str = "support"
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# --- merge ---------------------------------------------------------------------------------------


async def merge_customer(uow: SupportUnitOfWork, event: CustomerMerged) -> None:
    """Move the duplicate's rows to the surviving customer; later events for it follow."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await uow.customers.merged_into(merged) == survivor:
        return
    if await uow.customers.is_erased(survivor):
        await erase_customer(uow, merged, event.occurred_at)
        return
    merged_customer = await uow.customers.get_customer(merged)
    await move_customer_rows(uow, merged, survivor)
    if merged_customer is not None:
        if await uow.customers.get_customer(survivor) is None:
            # The survivor's registration has not arrived; keep who the person is meanwhile.
            uow.customers.add(
                SupportCustomer(
                    **merged_customer.model_dump(exclude={"customer_id"}), customer_id=survivor
                )
            )
        await uow.customers.delete(merged_customer)
    uow.customers.add(
        SupportMergedCustomer(merged_id=merged, customer_id=survivor, merged_at=event.occurred_at)
    )
    await uow.flush()


async def apply_merge(session: AsyncSession, settings: Settings, event: CustomerMerged) -> None:
    """A merge from the log, in the consumer's transaction."""
    await merge_customer(SqlSupportUnitOfWork(session, settings), event)


async def move_customer_rows(uow: SupportUnitOfWork, from_id: str, to_id: str) -> None:
    """Re-key everything held under `from_id` to `to_id` (a merge)."""
    await uow.products.move_products(from_id, to_id)
    await uow.tickets.move_tickets(from_id, to_id)
    await uow.mentions.move_mentions(from_id, to_id)
    await uow.customers.move_customer(from_id, to_id)


# --- erasure -------------------------------------------------------------------------------------


async def erase_customer(uow: SupportUnitOfWork, customer_id: str, at: datetime) -> None:
    """Delete everything about the customer (and duplicates merged into them); keep tombstones."""
    erased = [customer_id] + [
        alias.merged_id for alias in await uow.customers.aliases_of(customer_id)
    ]
    await delete_customer_rows(uow, customer_id)
    for erased_id in erased:
        if not await uow.customers.is_erased(erased_id):
            uow.customers.add(ErasedCustomer(customer_id=erased_id, erased_at=at))
    # Sent events about them (names, handles, free text) go now, not after the retention.
    await uow.outbox.forget_sent(erased)
    await uow.flush()


async def apply_erasure(session: AsyncSession, settings: Settings, event: CustomerErased) -> None:
    """GDPR erasure: nothing personal stays, only the id as a tombstone."""
    await erase_customer(
        SqlSupportUnitOfWork(session, settings), event.customer_id, event.occurred_at
    )


async def delete_customer_rows(uow: SupportUnitOfWork, customer_id: str) -> None:
    """Delete every row about the customer: mentions, tickets, products, profile, consents."""
    await uow.mentions.forget_mentions_of(customer_id)
    await uow.tickets.forget_tickets_of(customer_id)
    await uow.products.forget_products(customer_id)
    await uow.customers.forget_customer(customer_id)


# --- export --------------------------------------------------------------------------------------


async def export_customer(uow: SupportUnitOfWork, customer_id: str) -> CustomerExport:
    """Everything support holds about the customer (empty lists when nothing)."""
    rows = await export_rows(uow, customer_id)
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


async def export_rows(uow: SupportUnitOfWork, customer_id: str) -> dict[str, list[SQLModel]]:
    """Every row support holds about the customer, by table."""
    tickets = await uow.tickets.tickets_of(customer_id)
    ticket_ids = [ticket.id for ticket in tickets]
    mentions = await uow.mentions.mentions_of(customer_id)
    replies = await uow.mentions.replies_for([mention.id for mention in mentions])
    customer = await uow.customers.get_customer(customer_id)
    breaches = await uow.tickets.breaches_for(ticket_ids)
    return {
        "support_customers": [customer] if customer is not None else [],
        "support_consents": list(await uow.customers.consents_of(customer_id)),
        "support_handles": list(await uow.customers.handles_of(customer_id)),
        "support_merged_customers": list(await uow.customers.aliases_of(customer_id)),
        "support_products": list(await uow.products.products_of(customer_id)),
        "support_tickets": list(tickets),
        "support_ticket_comments": list(await uow.tickets.comments_for(ticket_ids)),
        "support_ticket_links": list(await uow.tickets.links_for(ticket_ids)),
        "support_sla_breaches": [b for found in breaches.values() for b in found],
        "support_mentions": list(mentions),
        "support_mention_replies": list(replies),
        "support_reply_attempts": list(
            await uow.mentions.attempts_for([reply.id for reply in replies])
        ),
    }
