"""Partner-share's unit of work, for the partners, ledger, notices, consents and slices use
cases and the merge, erasure and export: their stores, the customers' (who is known, who
was erased), what ending a partnership deletes in the consents and slices domains, and the
outbox, in one transaction.

Those use cases take a `PartnerShareUnitOfWork`; the routes' dependencies build
`SqlPartnerShareUnitOfWork` on the request's session, the notifier, the filler and the
merge and erasure handlers on theirs, and unit tests use
`rapport_partner_share.testing.FakePartnerShareUnitOfWork`.
"""

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import Event
from rapport_events.settings import CUSTOMER_EVENTS_TOPIC
from rapport_events.unit_of_work import (
    ErasingOutbox,
    SqlOutbox,
    SqlStore,
    SqlUnitOfWork,
    UnitOfWork,
)
from rapport_partner_share.consents.store import ConsentStore, SqlConsentStore
from rapport_partner_share.customers.store import CustomerStore, SqlCustomerStore
from rapport_partner_share.ledger.store import LedgerStore, SqlLedgerStore
from rapport_partner_share.notices.store import NoticeStore, SqlNoticeStore
from rapport_partner_share.partners.store import PartnerStore, SqlPartnerStore
from rapport_partner_share.shared import SOURCE
from rapport_partner_share.slices.store import SliceStore, SqlSliceStore


class EventIdOutbox(ErasingOutbox, Protocol):
    """The outbox, which also tells the id of one event it took: the ledger records the
    id of each disclosure's event, so that the two can be matched. An erasure takes back
    the sent events about the customer."""

    async def publish_one(self, event: Event) -> str:
        """Write `event` to the outbox; its id."""
        ...


class PartnerShares(Protocol):
    """What ending a partnership asks of the consents and slices domains."""

    async def delete_partner_shares(self, partner_id: str) -> None:
        """Delete the partner's consents, shared slices and match keys."""
        ...


class PartnerShareUnitOfWork(UnitOfWork, Protocol):
    @property
    def outbox(self) -> EventIdOutbox: ...

    @property
    def partners(self) -> PartnerStore: ...

    @property
    def ledger(self) -> LedgerStore: ...

    @property
    def notices(self) -> NoticeStore: ...

    @property
    def consents(self) -> ConsentStore: ...

    @property
    def slices(self) -> SliceStore: ...

    @property
    def shares(self) -> PartnerShares: ...

    @property
    def customers(self) -> CustomerStore: ...


class SqlEventIdOutbox(SqlOutbox):
    async def publish_one(self, event: Event) -> str:
        return outbox.add(self.session, event, source=self.source, topic=self.topic).id


# The set-based deletions a partnership's end needs, over the consents' and slices' tables.
class SqlPartnerShares(SqlStore):
    async def delete_partner_shares(self, partner_id: str) -> None:
        slices = SqlSliceStore(self.session)
        await slices.delete_slices(partner_id=partner_id)
        await slices.delete_match_keys(partner_id=partner_id)
        await SqlConsentStore(self.session).delete_consents(partner_id=partner_id)


class SqlPartnerShareUnitOfWork(SqlUnitOfWork):
    def __init__(self, session: AsyncSession, topic: str = CUSTOMER_EVENTS_TOPIC) -> None:
        self._events = SqlEventIdOutbox(session, source=SOURCE, topic=topic)
        super().__init__(session, self._events)
        self.partners = SqlPartnerStore(session)
        self.ledger = SqlLedgerStore(session)
        self.notices = SqlNoticeStore(session)
        self.consents = SqlConsentStore(session)
        self.slices = SqlSliceStore(session)
        self.shares = SqlPartnerShares(session)
        self.customers = SqlCustomerStore(session)

    @property
    def outbox(self) -> EventIdOutbox:
        return self._events
