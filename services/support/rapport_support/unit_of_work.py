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

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import (
    ErasingOutbox,
    SqlOutbox,
    SqlUnitOfWork,
    UnitOfWork,
)
from rapport_support.customers.store import CustomerStore, SqlCustomerStore
from rapport_support.mentions.store import MentionStore, SqlMentionStore
from rapport_support.products.store import ProductLookup, SqlProductLookup
from rapport_support.settings import Settings
from rapport_support.tickets.store import SqlTicketStore, TicketStore


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
