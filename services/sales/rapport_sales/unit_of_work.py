"""Sales' unit of work: the stores of its domains and the outbox, in one transaction.

Use cases take a `SalesUnitOfWork`; the routes' dependency builds `SqlSalesUnitOfWork` on
the request's session, the handlers on the consumer's, and unit tests use
`rapport_sales.testing.FakeSalesUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import SqlOutbox, SqlUnitOfWork, UnitOfWork
from rapport_sales.accounts.store import AccountStore, SqlAccountStore
from rapport_sales.activities.store import ActivityStore, SqlActivityStore
from rapport_sales.customers.store import CustomerStore, SqlCustomerStore
from rapport_sales.opportunities.store import OpportunityStore, SqlOpportunityStore
from rapport_sales.reports.store import ReportStore, SqlReportStore
from rapport_sales.shared import SOURCE


class SalesUnitOfWork(UnitOfWork, Protocol):
    @property
    def accounts(self) -> AccountStore: ...

    @property
    def customers(self) -> CustomerStore: ...

    @property
    def opportunities(self) -> OpportunityStore: ...

    @property
    def activities(self) -> ActivityStore: ...

    @property
    def reports(self) -> ReportStore: ...


class SqlSalesUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, topic: str = CUSTOMER_EVENTS_TOPIC) -> None:
        super().__init__(session, SqlOutbox(session, source=SOURCE, topic=topic))
        self.accounts = SqlAccountStore(session)
        self.customers = SqlCustomerStore(session)
        self.opportunities = SqlOpportunityStore(session)
        self.activities = SqlActivityStore(session)
        self.reports = SqlReportStore(session)
