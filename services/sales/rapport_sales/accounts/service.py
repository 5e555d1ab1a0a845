"""Accounts (companies) and their contacts (profile's customers)."""

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.types import AccountContactLinked, AccountCreated
from rapport_sales.accounts import store
from rapport_sales.accounts.models import (
    AccountCreate,
    AccountPublic,
    AccountUpdate,
    ContactPublic,
    SalesAccount,
    SalesContact,
)
from rapport_sales.customers.service import get_customer
from rapport_sales.errors import NotFound
from rapport_sales.shared import Page, account_subject, publish


async def get_account(session: AsyncSession, account_id: str) -> SalesAccount:
    """The account, or NotFound."""
    account = await store.get_account(session, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


async def create_account(session: AsyncSession, body: AccountCreate, topic: str) -> AccountPublic:
    """Open an account and publish account.created."""
    now = utcnow()
    account = SalesAccount(**body.model_dump(), created_at=now, updated_at=now)
    session.add(account)
    await publish(session, [_created(account)], topic)
    return await account_view(session, account)


def _created(account: SalesAccount) -> AccountCreated:
    return AccountCreated(
        customer_id=account_subject(account.id),
        account_id=account.id,
        name=account.name,
        domain=account.domain,
        industry=account.industry,
        size=account.size,
        owner=account.owner,
    )


async def update_account(
    session: AsyncSession, account_id: str, body: AccountUpdate
) -> AccountPublic:
    """Change an account's name, domain, industry, size or owner."""
    account = await get_account(session, account_id)
    for name, value in body.model_dump(exclude_unset=True).items():
        if name == "name" and value is None:
            continue
        setattr(account, name, value)
    account.updated_at = utcnow()
    session.add(account)
    return await account_view(session, account)


async def list_accounts(
    session: AsyncSession, owner: str | None, q: str | None, limit: int, cursor: str | None
) -> Page[AccountPublic]:
    """Accounts newest first, by owner or by a piece of their name or domain."""
    rows, next_cursor = await store.list_accounts(session, owner, q, limit, cursor)
    return Page(items=[AccountPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


async def account_view(session: AsyncSession, account: SalesAccount) -> AccountPublic:
    """The account with its contacts."""
    view = AccountPublic.model_validate(account)
    view.contacts = await contacts_of(session, account.id)
    return view


async def contacts_of(session: AsyncSession, account_id: str) -> list[ContactPublic]:
    """The account's contacts, with the name and address sales knows."""
    contacts = []
    for link, person in await store.contacts_with_people(session, account_id):
        contact = ContactPublic.model_validate(link)
        if person is not None:
            contact.email, contact.first_name = person.email, person.first_name
            contact.last_name = person.last_name
        contacts.append(contact)
    return contacts


async def link_contact(
    session: AsyncSession, account_id: str, customer_id: str, role: str | None, topic: str
) -> AccountPublic:
    """Make a known customer a contact of the account (again: its role changes)."""
    account = await get_account(session, account_id)
    await get_customer(session, customer_id)
    link = await store.get_contact(session, account_id, customer_id)
    if link is None:
        link = SalesContact(
            account_id=account_id, customer_id=customer_id, source="manual", linked_at=utcnow()
        )
        await publish(session, [_linked(account, link, role)], topic)
    link.role = role
    session.add(link)
    return await account_view(session, account)


def _linked(account: SalesAccount, link: SalesContact, role: str | None) -> AccountContactLinked:
    return AccountContactLinked(
        customer_id=link.customer_id,
        account_id=account.id,
        account_name=account.name,
        source=link.source,  # type: ignore[arg-type]
        role=role,
    )


async def unlink_contact(session: AsyncSession, account_id: str, customer_id: str) -> None:
    """The customer is no longer a contact of the account."""
    await get_account(session, account_id)
    if not await store.delete_contact(session, account_id, customer_id):
        raise NotFound(f"{customer_id} is not a contact of {account_id}")
