"""Profile's unit of work, for the customers, consents, identity, timeline, analytics,
tracking and gdpr use cases: their stores and the outbox, in one transaction.

Those use cases take a `ProfileUnitOfWork`; the routes' dependency builds
`SqlProfileUnitOfWork` on the request's session, the other domains and the projections
build it on theirs when they call one of those use cases, and unit tests use
`rapport_profile.testing.FakeProfileUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import SqlOutbox, SqlUnitOfWork, UnitOfWork
from rapport_profile.analytics.store import AnalyticsStore, SqlAnalyticsStore
from rapport_profile.consents.store import ConsentStore, SqlConsentStore
from rapport_profile.customers.store import CustomerStore, SqlCustomerStore
from rapport_profile.gdpr.store import GdprStore, SqlGdprStore
from rapport_profile.identity.store import IdentityStore, SqlIdentityStore
from rapport_profile.shared import SOURCE
from rapport_profile.timeline.store import SqlTimelineStore, TimelineStore
from rapport_profile.tracking.store import SqlTrackingStore, TrackingStore


class ProfileUnitOfWork(UnitOfWork, Protocol):
    @property
    def customers(self) -> CustomerStore: ...

    @property
    def consents(self) -> ConsentStore: ...

    @property
    def identity(self) -> IdentityStore: ...

    @property
    def timeline(self) -> TimelineStore: ...

    @property
    def analytics(self) -> AnalyticsStore: ...

    @property
    def tracking(self) -> TrackingStore: ...

    @property
    def gdpr(self) -> GdprStore: ...


class SqlProfileUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, topic: str = CUSTOMER_EVENTS_TOPIC) -> None:
        super().__init__(session, SqlOutbox(session, source=SOURCE, topic=topic))
        self.customers = SqlCustomerStore(session)
        self.consents = SqlConsentStore(session)
        self.identity = SqlIdentityStore(session)
        self.timeline = SqlTimelineStore(session)
        self.analytics = SqlAnalyticsStore(session)
        self.tracking = SqlTrackingStore(session)
        self.gdpr = SqlGdprStore(session)
