"""In-memory fakes of what the partners, ledger, notices, consents and slices use cases and
the merge, erasure and export (`rapport_partner_share.lifecycle`) ask of partner-share's
stores, for unit tests: the same queries as the SQL ones, answered with plain Python over
rows kept by primary key.

`FakePartnerShareUnitOfWork` puts them on one set of rows with a recording outbox; mypy
checks it is a `PartnerShareUnitOfWork`, so a fake that lacks a query, or answers it with
another signature, fails the lint.
"""

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rapport_events.base import Event
from rapport_events.testing.unit_of_work import FakeOutbox, FakeStore, FakeUnitOfWork
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.customers.models import ErasedCustomer, KnownCustomer
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner, PartnerApiKey
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices.models import MatchKey, SharedSlice

# How the fakes order rows by a time that may be missing: first, as SQLite does (PostgreSQL
# puts NULLs last; what a test asserts does not depend on it).
NEVER = datetime.min.replace(tzinfo=UTC)

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

    async def move_disclosure_subject(self, merged_id: str, surviving_id: str) -> None:
        for subject in self.rows.where(DisclosureSubject, lambda s: s.customer_id == merged_id):
            subject.customer_id = surviving_id

    async def forget_disclosure_subject(self, customer_id: str) -> None:
        for subject in self.rows.where(DisclosureSubject, lambda s: s.customer_id == customer_id):
            self.rows.delete(subject)


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

    async def move_notifications(self, merged_id: str, surviving_id: str) -> None:
        for notice in self.rows.where(Notification, lambda n: n.customer_id == merged_id):
            notice.customer_id = surviving_id

    async def anonymise_notifications(self, customer_id: str) -> None:
        for notice in self.rows.where(Notification, lambda n: n.customer_id == customer_id):
            notice.customer_id = None


class FakeConsentStore(FakeStore):
    async def get_consent(
        self, customer_id: str, partner_id: str, *, lock: bool = False
    ) -> PartnerConsent | None:
        return self.rows.get(PartnerConsent, customer_id, partner_id)

    async def granted_consent_by_ref(self, partner_id: str, ref: str) -> PartnerConsent | None:
        found = self.rows.where(
            PartnerConsent, lambda c: c.partner_id == partner_id and c.ref == ref and c.granted
        )
        return found[0] if found else None

    async def granted_consents(
        self, partner_id: str, customer_ids: Iterable[str]
    ) -> list[PartnerConsent]:
        wanted = set(customer_ids)
        return self.rows.where(
            PartnerConsent,
            lambda c: c.partner_id == partner_id and c.customer_id in wanted and c.granted,
        )

    async def changed_consents(
        self,
        partner_id: str,
        *,
        since: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[PartnerConsent]:
        def position(consent: PartnerConsent) -> tuple[datetime, str]:
            return as_utc(consent.changed_at), consent.customer_id

        found = self.rows.where(
            PartnerConsent,
            lambda c: (
                c.partner_id == partner_id
                and c.granted
                and (since is None or as_utc(c.changed_at) > since)
                and (after is None or position(c) > (as_utc(after[0]), after[1]))
            ),
        )
        return sorted(found, key=position)[:limit]

    async def due_fills(self, now: datetime, limit: int) -> list[PartnerConsent]:
        due = self.rows.where(
            PartnerConsent,
            lambda c: (
                c.fill_pending
                and c.granted
                and (c.fill_next_at is None or as_utc(c.fill_next_at) <= now)
            ),
        )
        due.sort(
            key=lambda c: (
                as_utc(c.fill_next_at) if c.fill_next_at else NEVER,
                c.customer_id,
                c.partner_id,
            )
        )
        return due[:limit]

    async def consents_of_customer(self, customer_id: str) -> list[PartnerConsent]:
        found = self.rows.where(PartnerConsent, lambda c: c.customer_id == customer_id)
        return sorted(found, key=lambda c: c.partner_id)

    async def delete_consents_of(self, customer_id: str) -> None:
        for consent in await self.consents_of_customer(customer_id):
            self.rows.delete(consent)


class FakeSliceStore(FakeStore):
    async def get_slice(
        self, customer_id: str, partner_id: str, slice_name: str
    ) -> SharedSlice | None:
        return self.rows.get(SharedSlice, customer_id, partner_id, slice_name)

    async def slices_of(self, customer_id: str, partner_id: str | None = None) -> list[SharedSlice]:
        found = self.rows.where(
            SharedSlice,
            lambda row: (
                row.customer_id == customer_id
                and (partner_id is None or row.partner_id == partner_id)
            ),
        )
        return sorted(found, key=lambda row: (row.partner_id, row.slice))

    async def slices_of_many(
        self, partner_id: str, customer_ids: Iterable[str], slice_name: str | None = None
    ) -> list[SharedSlice]:
        wanted = set(customer_ids)
        return self.rows.where(
            SharedSlice,
            lambda row: (
                row.partner_id == partner_id
                and row.customer_id in wanted
                and (slice_name is None or row.slice == slice_name)
            ),
        )

    async def replace_match_keys(
        self, customer_id: str, partner_id: str, keys: Iterable[tuple[str, str]]
    ) -> None:
        for key in self.rows.where(
            MatchKey, lambda key: key.customer_id == customer_id and key.partner_id == partner_id
        ):
            self.rows.delete(key)
        for kind, digest in set(keys):
            self.rows.add(
                MatchKey(partner_id=partner_id, kind=kind, digest=digest, customer_id=customer_id)
            )

    async def find_matches(
        self, partner_id: str, kind: str, digests: Sequence[str]
    ) -> list[MatchKey]:
        return self.rows.where(
            MatchKey,
            lambda key: key.partner_id == partner_id and key.kind == kind and key.digest in digests,
        )

    async def match_keys_of(self, customer_id: str) -> list[MatchKey]:
        found = self.rows.where(MatchKey, lambda key: key.customer_id == customer_id)
        return sorted(found, key=lambda key: (key.partner_id, key.kind))

    async def forget_shares(self, customer_id: str, partner_id: str | None = None) -> None:
        def shared(row: SharedSlice | MatchKey) -> bool:
            return row.customer_id == customer_id and partner_id in (None, row.partner_id)

        rows: list[SharedSlice | MatchKey] = [
            *self.rows.where(SharedSlice, shared),
            *self.rows.where(MatchKey, shared),
        ]
        for row in rows:
            self.rows.delete(row)


class FakeCustomerStore(FakeStore):
    async def get_known_customer(self, customer_id: str) -> KnownCustomer | None:
        return self.rows.get(KnownCustomer, customer_id)

    async def delete_known_customer(self, customer_id: str) -> None:
        known = self.rows.get(KnownCustomer, customer_id)
        if known is not None:
            self.rows.delete(known)

    async def get_tombstone(self, customer_id: str) -> ErasedCustomer | None:
        return self.rows.get(ErasedCustomer, customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        return self.rows.get(ErasedCustomer, customer_id) is not None


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
    """The partners', ledger's, notices', consents', slices' and customers' stores over one
    set of rows, what ending a partnership deletes, and a recording outbox."""

    outbox: FakeEventIdOutbox

    def __init__(self) -> None:
        super().__init__()
        self.outbox = FakeEventIdOutbox()
        self.partners = FakePartnerStore(self.rows)
        self.ledger = FakeLedgerStore(self.rows)
        self.notices = FakeNoticeStore(self.rows)
        self.consents = FakeConsentStore(self.rows)
        self.slices = FakeSliceStore(self.rows)
        self.shares = FakePartnerShares(self.rows)
        self.customers = FakeCustomerStore(self.rows)


# When the unit tests' partners registered.
REGISTERED = datetime(2025, 1, 1, tzinfo=UTC)


def add_partner(
    uow: "FakePartnerShareUnitOfWork",
    partner_id: str = "acme",
    *,
    slices: Sequence[str] = ("contact", "loyalty"),
    webhook_url: str | None = None,
) -> Partner:
    """A partner of the unit tests ("<Id> Travel", webhook secret `whsec_<id>`), in `uow`."""
    partner = Partner(
        id=partner_id,
        name=f"{partner_id.title()} Travel",
        industry="travel",
        slices=list(slices),
        purposes=["joint_offers"],
        webhook_url=webhook_url,
        webhook_secret=f"whsec_{partner_id}",
        ref_key="00" * 32,
        rate_limit_per_second=5,
        rate_limit_burst=10,
        created_at=REGISTERED,
    )
    uow.rows.add(partner)
    return partner


if TYPE_CHECKING:
    # The fakes match the Protocols structurally, member by member (subclassing a Protocol
    # would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: PartnerShareUnitOfWork = FakePartnerShareUnitOfWork()
