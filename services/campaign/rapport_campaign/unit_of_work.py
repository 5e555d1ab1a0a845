"""Campaign's unit of work, for the broadcasts', journeys', segments', audience's and
links' use cases and a customer's merge, erasure and export (`rapport_campaign.lifecycle`):
their stores, what they ask of the messaging domain and of segment membership, and the
outbox (which an erasure asks to take back sent events), in one transaction.

Those use cases take a `CampaignUnitOfWork`; the routes' dependency builds
`SqlCampaignUnitOfWork` on the request's session, the scheduler and the merge and erasure
handlers on theirs, and unit tests use `rapport_campaign.testing.FakeCampaignUnitOfWork`.
"""

from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience.store import AudienceStore, SqlAudienceStore
from rapport_campaign.campaigns.store import CampaignStore, SqlCampaignStore
from rapport_campaign.journeys.store import JourneyStore, SqlJourneyStore
from rapport_campaign.messaging import store as messaging_store
from rapport_campaign.messaging.models import Message
from rapport_campaign.segments.store import SegmentStore, SqlSegmentStore
from rapport_campaign.shared import SOURCE, rows_of, update_rows
from rapport_campaign.tracking.store import SqlTrackingStore, TrackingStore
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import (
    ErasingOutbox,
    SqlOutbox,
    SqlStore,
    SqlUnitOfWork,
    UnitOfWork,
)


class CampaignMessages(Protocol):
    """What broadcasts, journeys, the links and a merge, an erasure and the export ask of
    the messaging domain: a message read, messages queued, held back for an A/B decision,
    released or cancelled; a customer's messages read, moved or anonymised."""

    def add(self, row: Message) -> None: ...

    async def get_message(self, message_id: str) -> Message | None: ...

    async def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        """New messages, as dicts of their columns."""
        ...

    async def cancel_messages(self, campaign_id: str) -> None:
        """The campaign's held and pending messages are cancelled."""
        ...

    async def release_held_messages(self, campaign_id: str, variant: str, now: datetime) -> int:
        """The held messages go out with `variant`, due now; how many."""
        ...

    async def unfinished_messages(self, campaign_id: str) -> int:
        """The campaign's messages held, pending or being sent."""
        ...

    async def variant_results(self, campaign_id: str) -> dict[str, tuple[int, int, int]]:
        """Per variant of the test phase: sent, clicked and converted messages."""
        ...

    async def messages_of(self, customer_id: str) -> list[Message]: ...

    async def move_messages(self, from_id: str, to_id: str) -> None:
        """The messages of `from_id` become `to_id`'s."""
        ...

    async def cancel_customer_messages(self, customer_id: str) -> None:
        """The customer's held, pending and sending messages are cancelled."""
        ...

    async def anonymise_messages(self, customer_id: str) -> None:
        """The customer's messages stay for the campaign's counts, without who they went
        to, where, their offer code, data or order."""
        ...


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
    def messages(self) -> CampaignMessages: ...

    @property
    def tracking(self) -> TrackingStore: ...

    @property
    def membership(self) -> SegmentMembership: ...


# What an erased customer's messages keep of them: nothing.
ANONYMOUS_MESSAGE: dict[str, Any] = {
    "customer_id": None,
    "address": None,
    "offer_code": None,
    "context": {},
    "redeemed_order_id": None,
}


# The messaging domain's queries are still functions of the session (the sender's); these
# put the few that broadcasts, journeys and the links need on the unit of work.
class SqlCampaignMessages(SqlStore):
    async def get_message(self, message_id: str) -> Message | None:
        return await messaging_store.get_message(self.session, message_id)

    async def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        await messaging_store.insert_messages(self.session, rows)

    async def cancel_messages(self, campaign_id: str) -> None:
        await messaging_store.cancel_messages(self.session, campaign_id)

    async def release_held_messages(self, campaign_id: str, variant: str, now: datetime) -> int:
        return await messaging_store.release_held_messages(self.session, campaign_id, variant, now)

    async def unfinished_messages(self, campaign_id: str) -> int:
        return await messaging_store.unfinished_messages(self.session, campaign_id)

    async def variant_results(self, campaign_id: str) -> dict[str, tuple[int, int, int]]:
        return await messaging_store.variant_results(self.session, campaign_id)

    async def messages_of(self, customer_id: str) -> list[Message]:
        return await rows_of(self.session, Message, customer_id)

    async def move_messages(self, from_id: str, to_id: str) -> None:
        await update_rows(self.session, Message, from_id, {"customer_id": to_id})

    async def cancel_customer_messages(self, customer_id: str) -> None:
        await messaging_store.cancel_customer_messages(self.session, customer_id)

    async def anonymise_messages(self, customer_id: str) -> None:
        await update_rows(self.session, Message, customer_id, ANONYMOUS_MESSAGE)


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
        self.messages = SqlCampaignMessages(session)
        self.tracking = SqlTrackingStore(session)
        self.membership = SqlSegmentMembership(self)

    @property
    def outbox(self) -> ErasingOutbox:
        return self._events
