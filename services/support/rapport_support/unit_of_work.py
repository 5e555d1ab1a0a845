"""Support's unit of work, for the tickets use cases: the tickets' store, what they ask of
the customers and products domains, and the outbox, in one transaction.

The tickets use cases take a `SupportUnitOfWork`; the routes' dependencies build
`SqlSupportUnitOfWork` on the request's session, the SLA monitor and the mentions on
theirs, and unit tests use `rapport_support.testing.FakeSupportUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlOutbox, SqlStore, SqlUnitOfWork, UnitOfWork
from rapport_support.customers import service as customer_service
from rapport_support.products import store as product_store
from rapport_support.products.models import SupportProduct
from rapport_support.settings import Settings
from rapport_support.tickets.store import SqlTicketStore, TicketStore


class CustomerLookup(Protocol):
    """What the tickets ask of the customers domain."""

    async def resolve(self, customer_id: str) -> str | None:
        """The id the customer's data lives under now, through merges; None if erased."""
        ...


class ProductLookup(Protocol):
    """What the tickets ask of the products domain."""

    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None: ...


class SupportUnitOfWork(UnitOfWork, Protocol):
    @property
    def tickets(self) -> TicketStore: ...

    @property
    def customers(self) -> CustomerLookup: ...

    @property
    def products(self) -> ProductLookup: ...


# The customers and products domains' queries are still functions of the session; these
# put the few the tickets need on the unit of work.
class SqlCustomerLookup(SqlStore):
    async def resolve(self, customer_id: str) -> str | None:
        return await customer_service.resolve(self.session, customer_id)


class SqlProductLookup(SqlStore):
    async def product_by_serial(
        self, customer_id: str, serial_number: str
    ) -> SupportProduct | None:
        return await product_store.product_by_serial(self.session, customer_id, serial_number)


class SqlSupportUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        source = f"/services/{settings.service_name}"
        super().__init__(session, SqlOutbox(session, source=source, topic=settings.kafka.topic))
        self.tickets = SqlTicketStore(session)
        self.customers = SqlCustomerLookup(session)
        self.products = SqlProductLookup(session)
