"""Every query on customers, their segments and accounts, and idempotent requests.

`CustomerStore` is what the customers and consents use cases ask of it; `SqlCustomerStore`
answers on the transaction's session, and `rapport_profile.testing` has the in-memory fake.
`SqlCustomerStore.segments_of` is the merge's alone (it moves the segment memberships).
The search, `all_customers` (the tests') and the projection's writes of segment memberships
stay functions of the session: no use case asks them of a store."""

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import (
    bindparam,
    delete,
    func,
    or_,
    tuple_,
)
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlStore
from rapport_profile.analytics.models import CustomerMetrics
from rapport_profile.customers.models import (
    Account,
    AccountMember,
    Customer,
    IdempotentRequest,
    SegmentMembership,
)
from rapport_profile.shared import IN_LIST, _chunks, _upsert

SEGMENTS = SegmentMembership.__table__  # type: ignore[attr-defined]


class CustomerStore(Protocol):
    def add(self, row: SQLModel) -> None: ...

    async def get_customer(self, customer_id: str) -> Customer | None: ...

    async def customer_row(self, customer_id: str) -> Any | None:
        """The customer's columns to read (as attributes), not an object to change."""
        ...

    async def lock_customer(self, customer_id: str) -> Customer | None:
        """The customer row, locked for the transaction (where the database can)."""
        ...

    async def customers_among(self, customer_ids: Collection[str]) -> list[Customer]:
        """The customer rows of those ids that have one, merged and erased ones included."""
        ...

    async def find_by_email(self, email: str) -> Customer | None:
        """Whoever holds the address, whatever their status; compared in lower case."""
        ...

    async def find_by_external_ids(self, external_ids: dict[str, str]) -> list[Customer]:
        """Active customers sharing at least one (system, id) pair."""
        ...

    async def get_idempotent(self, key: str) -> IdempotentRequest | None: ...

    async def customers_merged_into(self, customer_id: str) -> list[Customer]:
        """The customers merged into this one (directly, not through a chain)."""
        ...

    async def get_account(self, account_id: str) -> Account | None: ...

    async def memberships_of(self, customer_id: str) -> list[AccountMember]:
        """The customer's account memberships."""
        ...

    async def accounts_of(self, customer_id: str) -> list[Account]:
        """The accounts the customer belongs to, oldest membership first."""
        ...


class SqlCustomerStore(SqlStore):
    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def customer_row(self, customer_id: str) -> Any | None:
        # Plain columns: no ORM object to build and track for a read.
        await self.session.flush()  # a row the caller added in this transaction is seen
        connection = await self.session.connection()
        result = await connection.execute(_customer_by_id(), {"customer_id": customer_id})
        return result.first()

    async def lock_customer(self, customer_id: str) -> Customer | None:
        result = await self.session.exec(
            select(Customer).where(Customer.id == customer_id).with_for_update()
        )
        return result.first()

    async def customers_among(self, customer_ids: Collection[str]) -> list[Customer]:
        found: list[Customer] = []
        for chunk in _chunks(customer_ids):
            result = await self.session.exec(select(Customer).where(col(Customer.id).in_(chunk)))
            found.extend(result.all())
        return found

    async def find_by_email(self, email: str) -> Customer | None:
        result = await self.session.exec(select(Customer).where(Customer.email == email.lower()))
        return result.first()

    async def find_by_external_ids(self, external_ids: dict[str, str]) -> list[Customer]:
        if not external_ids:
            return []
        # JSON is compared in Python: one query for both dialects.
        result = await self.session.exec(select(Customer).where(Customer.status == "active"))
        pairs = set(external_ids.items())
        return [c for c in result.all() if pairs & set((c.external_ids or {}).items())]

    async def get_idempotent(self, key: str) -> IdempotentRequest | None:
        return await self.session.get(IdempotentRequest, key)

    async def customers_merged_into(self, customer_id: str) -> list[Customer]:
        result = await self.session.exec(
            select(Customer).where(Customer.merged_into == customer_id)
        )
        return list(result.all())

    async def get_account(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def memberships_of(self, customer_id: str) -> list[AccountMember]:
        result = await self.session.exec(
            select(AccountMember).where(AccountMember.customer_id == customer_id)
        )
        return list(result.all())

    async def segments_of(self, customer_id: str) -> list[SegmentMembership]:
        result = await self.session.exec(
            select(SegmentMembership).where(SegmentMembership.customer_id == customer_id)
        )
        return list(result.all())

    async def accounts_of(self, customer_id: str) -> list[Account]:
        result = await self.session.exec(
            select(Account)
            .join(AccountMember, col(AccountMember.account_id) == col(Account.id))
            .where(AccountMember.customer_id == customer_id)
            .order_by(col(AccountMember.joined_at), col(Account.id))
        )
        return list(result.all())


@functools.cache
def _customer_by_id() -> Any:
    """Built once: building a select costs more than running this one."""
    table = Customer.__table__  # type: ignore[attr-defined]
    return sa_select(table).where(table.c.id == bindparam("customer_id"))


async def search_customers(
    session: AsyncSession,
    *,
    email: str | None,
    text: str | None,
    country: str | None,
    segment: str | None,
    tier: str | None,
    after: str | None,
    limit: int,
    phone: str | None = None,
    external_id: tuple[str, str] | None = None,
) -> list[Customer]:
    """Active customers matching every filter given, in id order after `after`."""
    query = select(Customer).where(Customer.status == "active")
    if email:
        query = query.where(Customer.email == email.strip().lower())
    if phone:
        query = query.where(Customer.phone == phone.strip())
    if external_id:
        system, value = external_id
        # The JSON path on every database (json_extract on SQLite, ->> on PostgreSQL).
        query = query.where(col(Customer.external_ids)[system].as_string() == value)
    if text:
        full_name = func.lower(Customer.first_name + " " + Customer.last_name)
        for word in text.lower().split():
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(full_name.like(f"%{escaped}%", escape="\\"))
    if country:
        query = query.where(Customer.country == country.upper())
    if segment:
        members = select(SegmentMembership.customer_id).where(
            or_(
                col(SegmentMembership.segment_id) == segment,
                col(SegmentMembership.segment_name) == segment,
            )
        )
        query = query.where(col(Customer.id).in_(members))
    if tier == "none":
        with_orders = select(CustomerMetrics.customer_id).where(CustomerMetrics.orders > 0)
        query = query.where(col(Customer.id).not_in(with_orders))
    elif tier is not None:
        in_tier = select(CustomerMetrics.customer_id).where(
            CustomerMetrics.orders > 0, CustomerMetrics.tier == tier
        )
        query = query.where(col(Customer.id).in_(in_tier))
    if after:
        query = query.where(Customer.id > after)
    result = await session.exec(query.order_by(col(Customer.id)).limit(limit))
    return list(result.all())


async def all_customers(session: AsyncSession) -> list[Customer]:
    result = await session.exec(select(Customer).where(Customer.status == "active"))
    return list(result.all())


async def set_segments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each row's membership, as the latest segment.entered told it (one row per key)."""
    await _upsert(session, SEGMENTS, rows, ("segment_name", "entered_at"))


async def delete_segments(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> None:
    """Delete these (customer, segment) memberships."""
    ordered = sorted(keys)
    for start in range(0, len(ordered), IN_LIST):
        await session.exec(
            delete(SegmentMembership).where(
                tuple_(col(SegmentMembership.customer_id), col(SegmentMembership.segment_id)).in_(
                    ordered[start : start + IN_LIST]
                )
            )
        )
