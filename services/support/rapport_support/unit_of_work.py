"""Support's unit of work, for the customers, tickets, mentions and products use cases: the
customers', tickets' and mentions' stores, what they ask of the products domain, and the
outbox, in one transaction.

Those use cases take a `SupportUnitOfWork`; the routes' dependencies build
`SqlSupportUnitOfWork` on the request's session, the SLA monitor and the reply dispatcher
on theirs, and unit tests use `rapport_support.testing.FakeSupportUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlOutbox, SqlStore, SqlUnitOfWork, UnitOfWork
from rapport_support.customers.store import CustomerStore, SqlCustomerStore
from rapport_support.mentions.store import MentionStore, SqlMentionStore
from rapport_support.products import store as product_store
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings
from rapport_support.tickets.store import SqlTicketStore, TicketStore


class ProductLookup(Protocol):
    """What the tickets and mentions ask of the products domain."""

    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None: ...

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        """What the customer owns, newest purchase first."""
        ...


class SupportUnitOfWork(UnitOfWork, Protocol):
    @property
    def tickets(self) -> TicketStore: ...

    @property
    def mentions(self) -> MentionStore: ...

    @property
    def customers(self) -> CustomerStore: ...

    @property
    def products(self) -> ProductLookup: ...


# The products domain's queries are still functions of the session; this puts the few the
# tickets and mentions need on the unit of work.
class SqlProductLookup(SqlStore):
    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None:
        return await product_store.product_by_serial(self.session, customer_id, serial_number)

    async def products_of(self, customer_id: str) -> list[SupportProduct]:
        return await product_store.products_of(self.session, customer_id)


class SqlSupportUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        source = f"/services/{settings.service_name}"
        super().__init__(session, SqlOutbox(session, source=source, topic=settings.kafka.topic))
        self.tickets = SqlTicketStore(session)
        self.mentions = SqlMentionStore(session)
        self.customers = SqlCustomerStore(session)
        self.products = SqlProductLookup(session)
