"""Support's unit of work, for the customers, tickets, mentions and products use cases and
the merge, erasure and export: the customers', tickets' and mentions' stores, what they ask
of the products domain, and the outbox (which an erasure asks to take back sent events),
in one transaction.

Those use cases take a `SupportUnitOfWork`; the routes' dependencies build
`SqlSupportUnitOfWork` on the request's session, the SLA monitor, the reply dispatcher and
the merge and erasure handlers on theirs, and unit tests use
`rapport_support.testing.FakeSupportUnitOfWork`.
"""

from typing import Protocol

from sqlalchemy import delete, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import (
    ErasingOutbox,
    SqlOutbox,
    SqlStore,
    SqlUnitOfWork,
    UnitOfWork,
)
from rapport_support.customers.store import CustomerStore, SqlCustomerStore
from rapport_support.mentions.store import MentionStore, SqlMentionStore
from rapport_support.products import store as product_store
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings
from rapport_support.tickets.store import SqlTicketStore, TicketStore


class ProductLookup(Protocol):
    """What the tickets, the mentions and the merge, erasure and export ask of the products
    domain."""

    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None: ...

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        """What the customer owns, newest purchase first."""
        ...

    async def move_products(self, from_id: str, to_id: str) -> None:
        """What `from_id` owns becomes `to_id`'s."""
        ...

    async def forget_products(self, customer_id: str) -> None:
        """Delete what the customer owns."""
        ...


class SupportUnitOfWork(UnitOfWork, Protocol):
    @property
    def outbox(self) -> ErasingOutbox: ...

    @property
    def tickets(self) -> TicketStore: ...

    @property
    def mentions(self) -> MentionStore: ...

    @property
    def customers(self) -> CustomerStore: ...

    @property
    def products(self) -> ProductLookup: ...


# The products domain's queries are still functions of the session; this puts the few the
# tickets, mentions and lifecycle need on the unit of work.
class SqlProductLookup(SqlStore):
    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None:
        return await product_store.product_by_serial(self.session, customer_id, serial_number)

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        return await product_store.products_of(self.session, customer_id)

    async def move_products(self, from_id: str, to_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            update(SupportProduct)
            .where(col(SupportProduct.customer_id) == from_id)
            .values(customer_id=to_id)
        )

    async def forget_products(self, customer_id: str) -> None:
        await self.session.exec(  # type: ignore[call-overload]
            delete(SupportProduct).where(col(SupportProduct.customer_id) == customer_id)
        )


class SqlSupportUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        source = f"/services/{settings.service_name}"
        self._events = SqlOutbox(session, source=source, topic=settings.kafka.topic)
        super().__init__(session, self._events)
        self.tickets = SqlTicketStore(session)
        self.mentions = SqlMentionStore(session)
        self.customers = SqlCustomerStore(session)
        self.products = SqlProductLookup(session)

    @property
    def outbox(self) -> ErasingOutbox:
        return self._events
