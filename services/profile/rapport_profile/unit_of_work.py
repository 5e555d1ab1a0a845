"""Profile's unit of work, for the customers and consents use cases: their stores, what
they ask of the identity domain, and the outbox, in one transaction.

Those use cases take a `ProfileUnitOfWork`; the routes' dependency builds
`SqlProfileUnitOfWork` on the request's session, the other domains build it on theirs when
they call a consent use case, and unit tests use `rapport_profile.testing.FakeProfileUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import SqlOutbox, SqlStore, SqlUnitOfWork, UnitOfWork
from rapport_profile.consents.store import ConsentStore, SqlConsentStore
from rapport_profile.customers.store import CustomerStore, SqlCustomerStore
from rapport_profile.shared import SOURCE


class IdentityLookup(Protocol):
    """What the customers use cases ask of the identity domain."""

    async def survivor_of(self, customer_id: str) -> str:
        """The id that owns `customer_id` now, through merges, erased or not."""
        ...


class ProfileUnitOfWork(UnitOfWork, Protocol):
    @property
    def customers(self) -> CustomerStore: ...

    @property
    def consents(self) -> ConsentStore: ...

    @property
    def identity(self) -> IdentityLookup: ...


# The identity domain's queries are still functions of the session; this puts the one the
# customers use cases need on the unit of work.
class SqlIdentityLookup(SqlStore):
    async def survivor_of(self, customer_id: str) -> str:
        # Imported here: identity's service imports the consents use cases, which import this.
        from rapport_profile.identity import service as identity_service

        return await identity_service.survivor_of(self.session, customer_id)


class SqlProfileUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, topic: str = CUSTOMER_EVENTS_TOPIC) -> None:
        super().__init__(session, SqlOutbox(session, source=SOURCE, topic=topic))
        self.customers = SqlCustomerStore(session)
        self.consents = SqlConsentStore(session)
        self.identity = SqlIdentityLookup(session)
