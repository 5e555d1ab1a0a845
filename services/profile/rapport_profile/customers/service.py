"""Customer use cases: register, read, update and search; idempotent replays of a
POST. Each writes its rows and its events in the caller's transaction.

Registering and changing a customer take a `ProfileUnitOfWork` (tracking passes its own to
`changeable` and `record_changes`); the reads take a session."""

import hashlib
import json
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.types import (
    CustomerRegistered,
    CustomerUpdated,
)
from rapport_profile.analytics import service as analytics_service
from rapport_profile.customers import store
from rapport_profile.customers.models import (
    AccountPublic,
    Customer,
    CustomerCreate,
    CustomerDetail,
    CustomerPublic,
    IdempotentRequest,
    event_fields,
)
from rapport_profile.errors import (
    Conflict,
    CustomerNotFound,
    DuplicateEmail,
    DuplicateExternalId,
    IdempotencyMismatch,
)
from rapport_profile.unit_of_work import ProfileUnitOfWork


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def replay(uow: ProfileUnitOfWork, key: str, fingerprint: str) -> IdempotentRequest | None:
    """The stored answer to an earlier request with this key, if there is one."""
    earlier = await uow.customers.get_idempotent(key)
    if earlier is None:
        return None
    if earlier.request_hash != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
    return earlier


def remember(
    uow: ProfileUnitOfWork,
    key: str,
    fingerprint: str,
    status_code: int,
    body: dict[str, Any],
    customer_id: str | None,
) -> None:
    """Keep the answer so a retry with the same key gets it again."""
    uow.customers.add(
        IdempotentRequest(
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            body=body,
            customer_id=customer_id,
        ),
    )


async def register_customer(uow: ProfileUnitOfWork, data: CustomerCreate) -> Customer:
    """Create a customer and publish customer.registered."""
    existing = await uow.customers.find_by_email(data.email)
    if existing is not None:
        # The holder is named even if erased: the address is taken all the same.
        raise DuplicateEmail(await uow.identity.survivor_of(existing.id))
    holders = await uow.customers.find_by_external_ids(data.external_ids)
    if holders:
        raise DuplicateExternalId(holders[0].id)
    customer = Customer.model_validate(data)
    uow.customers.add(customer)
    await uow.flush()
    await uow.outbox.publish(
        [CustomerRegistered(customer_id=customer.id, **event_fields(customer))]
    )
    return customer


def known(customer: Customer | None, customer_id: str) -> Customer:
    """The customer found under `customer_id`, or CustomerNotFound."""
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


def changeable(customer: Customer | None, customer_id: str) -> Customer:
    """The customer found, if it can be changed: not merged away (Conflict), not erased."""
    customer = known(customer, customer_id)
    if customer.status != "active":
        raise Conflict(f"customer {customer_id} was merged into {customer.merged_into}")
    return customer


async def get_customer(session: AsyncSession, customer_id: str) -> Customer:
    """One customer, or CustomerNotFound."""
    return known(await store.SqlCustomerStore(session).get_customer(customer_id), customer_id)


async def customer_detail(uow: ProfileUnitOfWork, customer_id: str) -> CustomerDetail:
    """One customer as the API shows it, with the accounts they belong to, or
    CustomerNotFound."""
    row = await uow.customers.customer_row(customer_id)
    if row is None:
        raise CustomerNotFound(customer_id)
    return await detail_of(uow, row)


async def detail_of(uow: ProfileUnitOfWork, row: Any) -> CustomerDetail:
    """The customer read as `row` (`customer_row`), with the accounts they belong to."""
    detail = CustomerDetail.model_validate(row)
    accounts = await uow.customers.accounts_of(row.id)
    detail.accounts = [AccountPublic.model_validate(a) for a in accounts]
    return detail


async def update_customer(
    uow: ProfileUnitOfWork, customer_id: str, changes: dict[str, Any]
) -> Customer:
    """Apply a partial change and publish customer.updated with what really changed."""
    customer = changeable(await uow.customers.lock_customer(customer_id), customer_id)
    email = changes.get("email")
    if email and email != customer.email:
        holder = await uow.customers.find_by_email(email)
        if holder is not None and holder.id != customer.id:
            # The holder is named even if erased: the address is taken all the same.
            raise DuplicateEmail(await uow.identity.survivor_of(holder.id))
    external_ids = changes.get("external_ids")
    if external_ids:
        holders = await uow.customers.find_by_external_ids(external_ids)
        holders = [c for c in holders if c.id != customer.id]
        if holders:
            raise DuplicateExternalId(holders[0].id)
    await record_changes(uow, customer, changes)
    return customer


async def record_changes(
    uow: ProfileUnitOfWork, customer: Customer, changes: dict[str, Any]
) -> dict[str, Any]:
    """Set the fields that differ and publish them; returns what changed."""
    changed = _set_changes(customer, changes)
    if changed:
        uow.customers.add(customer)
        await uow.outbox.publish([_updated(customer, changed)])
    return changed


def _set_changes(customer: Customer, changes: dict[str, Any]) -> dict[str, Any]:
    """Set the fields that differ (and `updated_at` if any does); returns them."""
    changed = {name: value for name, value in changes.items() if getattr(customer, name) != value}
    for name, value in changed.items():
        setattr(customer, name, value)
    if changed:
        customer.updated_at = utcnow()
    return changed


def _updated(customer: Customer, changed: dict[str, Any]) -> CustomerUpdated:
    """customer.updated with the changed fields as the API shows them."""
    published = CustomerPublic.model_validate(customer).model_dump(mode="json")
    return CustomerUpdated(customer_id=customer.id, changes={n: published[n] for n in changed})


async def search_customers(
    session: AsyncSession,
    *,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    text: str | None = None,
    country: str | None = None,
    segment: str | None = None,
    tier: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Customer], str | None]:
    """Active customers by exact e-mail, phone, `system:id`, words of the name and filters,
    in pages."""
    after = decode_cursor(cursor, str)[0] if cursor else None
    if tier is not None:
        analytics_service.check_tier(tier)
    found = await store.search_customers(
        session,
        email=email,
        phone=phone,
        external_id=tuple(external_id.split(":", 1)) if external_id else None,  # type: ignore[arg-type]
        text=text,
        country=country,
        segment=segment,
        tier=tier,
        after=after,
        limit=limit + 1,
    )
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(found) > limit else None
    return page, next_cursor
