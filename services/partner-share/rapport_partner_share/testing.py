"""In-memory fakes of what the partners, ledger and notices use cases ask of partner-share's
stores, for unit tests: the same queries as the SQL ones, answered with plain Python over
rows kept by primary key.

`FakePartnerShareUnitOfWork` puts them on one set of rows with a recording outbox; mypy
checks it is a `PartnerShareUnitOfWork`, so a fake that lacks a query, or answers it with
another signature, fails the lint.
"""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rapport_events.base import Event
from rapport_events.testing.unit_of_work import FakeOutbox, FakeStore, FakeUnitOfWork
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner, PartnerApiKey
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices.models import MatchKey, SharedSlice

if TYPE_CHECKING:
    from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork


class FakeEventIdOutbox(FakeOutbox):
    """Records the published events, and gives each one published alone a fresh id."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    async def publish_one(self, event: Event) -> str:
        await self.publish([event])
        self.ids.append(str(uuid.uuid4()))
        return self.ids[-1]


class FakePartnerStore(FakeStore):
    async def get_partner(self, partner_id: str) -> Partner | None:
        return self.rows.get(Partner, partner_id)

    async def list_partners(self) -> list[Partner]:
        active = self.rows.where(Partner, lambda partner: partner.deleted_at is None)
        return sorted(active, key=lambda partner: (as_utc(partner.created_at), partner.id))

    async def list_api_keys(self, partner_ids: Sequence[str]) -> dict[str, list[PartnerApiKey]]:
        found = self.rows.where(PartnerApiKey, lambda key: key.partner_id in partner_ids)
        found.sort(key=lambda key: (as_utc(key.created_at), key.id))
        return {
            partner_id: [key for key in found if key.partner_id == partner_id]
            for partner_id in partner_ids
        }

    async def get_api_key(self, key_id: str) -> PartnerApiKey | None:
        return self.rows.get(PartnerApiKey, key_id)

    async def partner_by_key_hash(self, key_hash: str) -> Partner | None:
        for key in self.rows.where(PartnerApiKey, lambda key: key.key_hash == key_hash):
            partner = self.rows.get(Partner, key.partner_id)
            if key.revoked_at is None and partner is not None and partner.deleted_at is None:
                return partner
        return None

    async def revoke_api_keys(self, partner_id: str, now: datetime) -> None:
        for key in self.rows.where(
            PartnerApiKey, lambda key: key.partner_id == partner_id and key.revoked_at is None
        ):
            key.revoked_at = now


class FakeLedgerStore(FakeStore):
    async def append_disclosure(self, disclosure: Disclosure, customer_id: str) -> Disclosure:
        self.rows.add(disclosure)
        assert disclosure.id is not None
        self.rows.add(DisclosureSubject(disclosure_id=disclosure.id, customer_id=customer_id))
        return disclosure

    def _customer_of(self, disclosure: Disclosure) -> str | None:
        subject = self.rows.get(DisclosureSubject, disclosure.id)
        return subject.customer_id if subject is not None else None

    async def list_disclosures(
        self,
        *,
        partner_id: str | None,
        customer_id: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[tuple[Disclosure, str | None]]:
        def matches(entry: Disclosure, customer: str | None) -> bool:
            at = as_utc(entry.disclosed_at)
            checks = [
                partner_id is None or entry.partner_id == partner_id,
                customer_id is None or customer == customer_id,
                since is None or at >= since,
                until is None or at < until,
                before_id is None or (entry.id or 0) < before_id,
            ]
            return all(checks)

        found = [(entry, self._customer_of(entry)) for entry in self.rows.all(Disclosure)]
        found = [(entry, customer) for entry, customer in found if matches(entry, customer)]
        found.sort(key=lambda pair: pair[0].id or 0, reverse=True)
        return found[:limit]

    async def disclosures_of_subject(
        self, subject: str, *, before_id: int | None, limit: int
    ) -> list[Disclosure]:
        found = self.rows.where(
            Disclosure,
            lambda entry: (
                entry.subject == subject and (before_id is None or (entry.id or 0) < before_id)
            ),
        )
        found.sort(key=lambda entry: entry.id or 0, reverse=True)
        return found[:limit]


class FakeNoticeStore(FakeStore):
    async def get_notification(self, notification_id: str) -> Notification | None:
        return self.rows.get(Notification, notification_id)

    async def list_notifications(
        self,
        *,
        partner_id: str | None = None,
        customer_id: str | None = None,
        pending_only: bool = False,
        limit: int = 100,
    ) -> list[Notification]:
        found = self.rows.where(
            Notification,
            lambda notice: (
                (partner_id is None or notice.partner_id == partner_id)
                and (customer_id is None or notice.customer_id == customer_id)
                and (not pending_only or notice.acknowledged_at is None)
            ),
        )
        found.sort(key=lambda notice: (as_utc(notice.created_at), notice.id))
        return found[:limit]

    async def erasure_notices(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Notification]:
        wanted = set(pairs)
        erasures = self.rows.where(
            Notification,
            lambda notice: (
                notice.kind == "customer.erased"
                and (notice.partner_id, notice.partner_ref) in wanted
            ),
        )
        found: dict[tuple[str, str], Notification] = {}
        for notice in sorted(erasures, key=lambda notice: as_utc(notice.created_at)):
            found.setdefault((notice.partner_id, notice.partner_ref), notice)
        return found

    async def due_notifications(
        self, now: datetime, limit: int
    ) -> list[tuple[Notification, Partner]]:
        due: list[tuple[Notification, Partner]] = []
        for notice in self.rows.all(Notification):
            partner = self.rows.get(Partner, notice.partner_id)
            if (
                notice.acknowledged_at is None
                and notice.next_attempt_at is not None
                and as_utc(notice.next_attempt_at) <= now
                and partner is not None
                and partner.webhook_url is not None
            ):
                due.append((notice, partner))
        due.sort(key=lambda pair: (as_utc(pair[0].next_attempt_at or now), pair[0].id))
        return due[:limit]

    async def claim_notification(
        self, notification_id: str, seen_next_at: datetime, lease_until: datetime
    ) -> bool:
        notice = self.rows.get(Notification, notification_id)
        if notice is None or notice.next_attempt_at != seen_next_at:
            return False
        notice.next_attempt_at = lease_until
        return True


class FakePartnerShares(FakeStore):
    async def delete_partner_shares(self, partner_id: str) -> None:
        rows: list[SharedSlice | MatchKey | PartnerConsent] = [
            *self.rows.where(SharedSlice, lambda row: row.partner_id == partner_id),
            *self.rows.where(MatchKey, lambda row: row.partner_id == partner_id),
            *self.rows.where(PartnerConsent, lambda row: row.partner_id == partner_id),
        ]
        for row in rows:
            self.rows.delete(row)


class FakePartnerShareUnitOfWork(FakeUnitOfWork):
    """The partners', ledger's and notices' stores over one set of rows, what ending a
    partnership deletes, and a recording outbox."""

    outbox: FakeEventIdOutbox

    def __init__(self) -> None:
        super().__init__()
        self.outbox = FakeEventIdOutbox()
        self.partners = FakePartnerStore(self.rows)
        self.ledger = FakeLedgerStore(self.rows)
        self.notices = FakeNoticeStore(self.rows)
        self.shares = FakePartnerShares(self.rows)


if TYPE_CHECKING:
    # The fakes match the Protocols structurally, member by member (subclassing a Protocol
    # would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: PartnerShareUnitOfWork = FakePartnerShareUnitOfWork()
