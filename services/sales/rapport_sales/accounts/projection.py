"""What the accounts domain learns from the log: Segment group calls (through profile's
account.joined) create accounts and make their callers contacts, set-based."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import batch
from rapport_events.types import AccountJoined
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.shared import aware
from rapport_sales.unit_of_work import SalesUnitOfWork, SqlSalesUnitOfWork


async def join_accounts(uow: SalesUnitOfWork, events: Sequence[AccountJoined]) -> None:
    """Group calls: the account exists (its traits) and the customer is its contact."""
    erased = await uow.customers.erased_among({event.customer_id for event in events})
    await join_groups(
        uow,
        [
            (event.customer_id, event.account_id, event.name, event.traits, event.occurred_at)
            for event in events
            if event.customer_id not in erased
        ],
    )


@batch
async def apply_account_joins(events: Sequence[AccountJoined], session: AsyncSession) -> None:
    """`join_accounts` on the consumer's transaction."""
    await join_accounts(SqlSalesUnitOfWork(session), events)


async def join_groups(
    uow: SalesUnitOfWork, joins: Sequence[tuple[str, str, str | None, dict[str, Any], datetime]]
) -> None:
    """Group calls (customer, groupId, name, traits, when): accounts and links, set-based.

    An account named by a groupId is created on its first call; later calls fill its
    name and traits. One IN query per table reads what exists.
    """
    external_ids = {external for _c, external, *_ in joins}
    known = await uow.accounts.accounts_by_external_id(external_ids)
    for _customer, external, name, traits, at in joins:
        account = known.get(external)
        if account is None:
            account = SalesAccount(
                external_id=external, name=name or external, created_at=at, updated_at=at
            )
            known[external] = account
        elif name:
            account.name = name
        account.traits = {**(account.traits or {}), **traits}
        account.industry = _trait(traits, "industry", 100) or account.industry
        account.domain = _trait(traits, "website", 253, host=True) or account.domain
        account.updated_at = max(at, aware(account.updated_at)) if account.updated_at else at
        uow.accounts.add(account)
    await uow.flush()
    await _link_all(
        uow, [(customer, known[external].id, at) for customer, external, *_, at in joins]
    )


async def _link_all(uow: SalesUnitOfWork, links: Sequence[tuple[str, str, datetime]]) -> None:
    pairs = {(account_id, customer_id) for customer_id, account_id, _at in links}
    customers = {customer_id for _a, customer_id in pairs}
    existing = await uow.accounts.contact_links_of(customers)
    for customer_id, account_id, at in links:
        if (account_id, customer_id) in existing:
            continue
        existing.add((account_id, customer_id))
        uow.accounts.add(
            SalesContact(
                account_id=account_id, customer_id=customer_id, source="group", linked_at=at
            )
        )


def _trait(traits: dict[str, Any], name: str, limit: int, *, host: bool = False) -> str | None:
    value = traits.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower() if host else value.strip()
    if host:
        value = value.removeprefix("https://").removeprefix("http://").split("/")[0]
    return value[:limit] or None
