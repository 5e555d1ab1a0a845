"""Campaign's unit of work, for the broadcasts', journeys', segments', audience's, links'
and sender's use cases and a customer's merge, erasure and export
(`rapport_campaign.lifecycle`): their stores, what they ask of segment membership, and the
outbox (which an erasure asks to take back sent events), in one transaction.

Those use cases take a `CampaignUnitOfWork`; the routes' dependency builds
`SqlCampaignUnitOfWork` on the request's session, the scheduler, the sender and the merge
and erasure handlers on theirs, and unit tests use
`rapport_campaign.testing.FakeCampaignUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience.store import AudienceStore, SqlAudienceStore
from rapport_campaign.campaigns.store import CampaignStore, SqlCampaignStore
from rapport_campaign.journeys.store import JourneyStore, SqlJourneyStore
from rapport_campaign.messaging.store import MessageStore, SqlMessageStore
from rapport_campaign.segments.store import SegmentStore, SqlSegmentStore
from rapport_campaign.shared import SOURCE
from rapport_campaign.tracking.store import SqlTrackingStore, TrackingStore
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import (
    ErasingOutbox,
    SqlOutbox,
    SqlUnitOfWork,
    UnitOfWork,
)


class SegmentMembership(Protocol):
    """What a change to one customer asks of segments outside their own use cases."""

    async def reevaluate(self, customer_id: str, kinds: set[str] | None) -> None:
        """Test the customer again against the segments a change of these kinds can move
        (None: every segment), publishing who entered and exited."""
        ...


class CampaignUnitOfWork(UnitOfWork, Protocol):
    @property
    def outbox(self) -> ErasingOutbox: ...

    @property
    def campaigns(self) -> CampaignStore: ...

    @property
    def journeys(self) -> JourneyStore: ...

    @property
    def audience(self) -> AudienceStore: ...

    @property
    def segments(self) -> SegmentStore: ...

    @property
    def messages(self) -> MessageStore: ...

    @property
    def tracking(self) -> TrackingStore: ...

    @property
    def membership(self) -> SegmentMembership: ...


class SqlSegmentMembership:
    """The segments' own re-evaluation, in the unit of work it belongs to."""

    def __init__(self, uow: CampaignUnitOfWork) -> None:
        self.uow = uow

    async def reevaluate(self, customer_id: str, kinds: set[str] | None) -> None:
        # Imported when used: the segments' service takes this module's unit of work.
        from rapport_campaign.segments.service import reevaluate

        await reevaluate(self.uow, customer_id, kinds)


class SqlCampaignUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, topic: str = CUSTOMER_EVENTS_TOPIC) -> None:
        self._events = SqlOutbox(session, source=SOURCE, topic=topic)
        super().__init__(session, self._events)
        self.campaigns = SqlCampaignStore(session)
        self.journeys = SqlJourneyStore(session)
        self.audience = SqlAudienceStore(session)
        self.segments = SqlSegmentStore(session)
        self.messages = SqlMessageStore(session)
        self.tracking = SqlTrackingStore(session)
        self.membership = SqlSegmentMembership(self)

    @property
    def outbox(self) -> ErasingOutbox:
        return self._events
