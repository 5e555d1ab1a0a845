"""The support context: everything a rep sees when a customer calls, from support's own
projection, so it answers while profile is down.

`get_support_context` takes a unit of work; `resolve_all` takes the session, for the
projections, which resolve a batch's ids at once on the consumer's."""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import customer_ids
from rapport_events.base import utcnow
from rapport_support.customers import store
from rapport_support.customers.models import ConsentPublic, CustomerSummary, SupportContext
from rapport_support.errors import CustomerNotFound
from rapport_support.mentions.models import MentionSummary
from rapport_support.products.models import ProductPublic
from rapport_support.tickets.models import OPEN_STATUSES, TicketSummary
from rapport_support.unit_of_work import SupportUnitOfWork

CONTEXT_MENTIONS = 20


async def resolve_all(session: AsyncSession, ids: Iterable[str]) -> dict[str, str | None]:
    """The id each customer's data lives under now, through merges (None if erased): one
    query per link of a merge chain, one for erasures."""
    customers = store.SqlCustomerStore(session)
    return await customer_ids.resolve_all(ids, customers.survivors_of, customers.erased_among)


def _product_view(product: Any, today: date) -> ProductPublic:
    view = ProductPublic.model_validate(product)
    view.under_warranty = product.warranty_ends_on >= today
    return view


async def _context_rows(uow: SupportUnitOfWork, customer_id: str) -> tuple[str, store.ContextRows]:
    """The rows of the context, under the id the customer's data lives under now."""
    rows = await uow.customers.context_rows(customer_id, CONTEXT_MENTIONS)
    if rows.customer is not None:
        return customer_id, rows
    # Merges and erasure delete the row, so only a missing one needs resolving.
    current = await uow.customers.resolve(customer_id)
    if current is None:
        # Erasure tombstones the ids merged into the customer too: the id asked names it.
        raise CustomerNotFound(customer_id)
    if current != customer_id:
        return current, await uow.customers.context_rows(current, CONTEXT_MENTIONS)
    return customer_id, rows


def _summary(rows: store.ContextRows) -> CustomerSummary | None:
    if rows.customer is None:
        return None
    summary = CustomerSummary.model_validate(rows.customer)
    summary.social_handles = {handle.platform: handle.handle for handle in rows.handles}
    summary.consents = [ConsentPublic.model_validate(consent) for consent in rows.consents]
    return summary


async def get_support_context(
    uow: SupportUnitOfWork, customer_id: str, now: datetime | None = None
) -> SupportContext:
    """The customer, the products they own and their earlier tickets, or CustomerNotFound."""
    now = now or utcnow()
    customer_id, rows = await _context_rows(uow, customer_id)
    if rows.customer is None and not rows.products and not rows.tickets:
        raise CustomerNotFound(customer_id)
    return SupportContext(
        customer_id=customer_id,
        customer=_summary(rows),
        products=[_product_view(product, now.date()) for product in rows.products],
        tickets=[TicketSummary.model_validate(ticket) for ticket in rows.tickets],
        open_tickets=sum(ticket.status in OPEN_STATUSES for ticket in rows.tickets),
        mentions=[MentionSummary.model_validate(mention) for mention in rows.mentions],
    )
