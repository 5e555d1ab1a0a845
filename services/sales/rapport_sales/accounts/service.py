"""Accounts (companies) and their contacts (profile's customers)."""

from rapport_events.base import utcnow
from rapport_events.types import AccountContactLinked, AccountCreated
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
from rapport_sales.shared import Page, account_subject
from rapport_sales.unit_of_work import SalesUnitOfWork


async def get_account(uow: SalesUnitOfWork, account_id: str) -> SalesAccount:
    """The account, or NotFound."""
    account = await uow.accounts.get_account(account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


async def create_account(uow: SalesUnitOfWork, body: AccountCreate) -> AccountPublic:
    """Open an account and publish account.created."""
    now = utcnow()
    account = SalesAccount(**body.model_dump(), created_at=now, updated_at=now)
    uow.accounts.add(account)
    await uow.outbox.publish([_created(account)])
    return await account_view(uow, account)


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
    uow: SalesUnitOfWork, account_id: str, body: AccountUpdate
) -> AccountPublic:
    """Change an account's name, domain, industry, size or owner."""
    account = await get_account(uow, account_id)
    for name, value in body.model_dump(exclude_unset=True).items():
        if name == "name" and value is None:
            continue
        setattr(account, name, value)
    account.updated_at = utcnow()
    uow.accounts.add(account)
    return await account_view(uow, account)


async def list_accounts(
    uow: SalesUnitOfWork, owner: str | None, q: str | None, limit: int, cursor: str | None
) -> Page[AccountPublic]:
    """Accounts newest first, by owner or by a piece of their name or domain."""
    rows, next_cursor = await uow.accounts.list_accounts(owner, q, limit, cursor)
    return Page(items=[AccountPublic.model_validate(row) for row in rows], next_cursor=next_cursor)


async def account_view(uow: SalesUnitOfWork, account: SalesAccount) -> AccountPublic:
    """The account with its contacts."""
    view = AccountPublic.model_validate(account)
    view.contacts = await contacts_of(uow, account.id)
    return view


async def contacts_of(uow: SalesUnitOfWork, account_id: str) -> list[ContactPublic]:
    """The account's contacts, with the name and address sales knows."""
    contacts = []
    for link, person in await uow.accounts.contacts_with_people(account_id):
        contact = ContactPublic.model_validate(link)
        if person is not None:
            contact.email, contact.first_name = person.email, person.first_name
            contact.last_name = person.last_name
        contacts.append(contact)
    return contacts


async def link_contact(
    uow: SalesUnitOfWork, account_id: str, customer_id: str, role: str | None
) -> AccountPublic:
    """Make a known customer a contact of the account (again: its role changes)."""
    account = await get_account(uow, account_id)
    await get_customer(uow, customer_id)
    link = await uow.accounts.get_contact(account_id, customer_id)
    if link is None:
        link = SalesContact(
            account_id=account_id, customer_id=customer_id, source="manual", linked_at=utcnow()
        )
        await uow.outbox.publish([_linked(account, link, role)])
    link.role = role
    uow.accounts.add(link)
    return await account_view(uow, account)


def _linked(account: SalesAccount, link: SalesContact, role: str | None) -> AccountContactLinked:
    return AccountContactLinked(
        customer_id=link.customer_id,
        account_id=account.id,
        account_name=account.name,
        source=link.source,  # type: ignore[arg-type]
        role=role,
    )


async def unlink_contact(uow: SalesUnitOfWork, account_id: str, customer_id: str) -> None:
    """The customer is no longer a contact of the account."""
    await get_account(uow, account_id)
    if not await uow.accounts.delete_contact(account_id, customer_id):
        raise NotFound(f"{customer_id} is not a contact of {account_id}")
