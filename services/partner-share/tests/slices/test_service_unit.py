"""The partner API's reads of the slices against in-memory stores: what a partner is shown
(consent ∩ registration, whitelisted fields), the ledger entry and event every disclosure
leaves, matches and overlaps of hashed audiences, contributed events; and the filler
storing what profile answered."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rapport_events.base import utcnow
from rapport_events.types import PartnerDataDisclosed, PartnerEventContributed
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import InvalidRequest, UnknownRef
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.partners.service import PartnerRequest
from rapport_partner_share.slices import fills, rules, service
from rapport_partner_share.slices.fills import FillJob
from rapport_partner_share.slices.models import (
    ContributedEvent,
    HashedIdentifiers,
    MatchKey,
    SharedSlice,
)
from rapport_partner_share.testing import FakePartnerShareUnitOfWork, add_partner

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
LEDGER_KEY = "ledger-key-for-tests"
ADA_EMAIL = "ada@example.com"
ADA_PHONE = "+441234567890"


def a_partner(
    uow: FakePartnerShareUnitOfWork,
    partner_id: str = "acme",
    slices: tuple[str, ...] = ("contact", "loyalty", "segments"),
) -> Partner:
    return add_partner(uow, partner_id, slices=slices)


def a_consent(
    uow: FakePartnerShareUnitOfWork,
    partner: Partner,
    customer_id: str = "ada",
    slices: tuple[str, ...] = ("contact", "loyalty", "segments", "demographics"),
    granted: bool = True,
    minutes: int = 0,
) -> PartnerConsent:
    consent = PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=f"{partner.id}-ref-{customer_id}",
        granted=granted,
        slices=list(slices) if granted else [],
        version=3,
        granted_at=SINCE if granted else None,
        changed_at=SINCE + timedelta(minutes=minutes),
    )
    uow.rows.add(consent)
    return consent


def a_slice(consent: PartnerConsent, name: str, data: dict[str, Any]) -> SharedSlice:
    return SharedSlice(
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        slice=name,
        data=data,
        updated_at=SINCE,
    )


def contact_of(uow: FakePartnerShareUnitOfWork, consent: PartnerConsent) -> None:
    """Ada's contact slice and the match keys it gives her partner."""
    uow.rows.add(
        a_slice(
            consent,
            "contact",
            {"email": ADA_EMAIL, "phone": ADA_PHONE, "first_name": "Ada", "last_name": None},
        )
    )
    for kind, digest in (
        ("email", security.email_digest(ADA_EMAIL)),
        ("phone", security.phone_digest(ADA_PHONE)),
    ):
        uow.rows.add(
            MatchKey(
                partner_id=consent.partner_id,
                kind=kind,
                digest=digest,
                customer_id=consent.customer_id,
            )
        )


def in_segment(consent: PartnerConsent, *segments: str) -> SharedSlice:
    members = {s: {"name": s.title(), "since": "2025-01-01T00:00:00+00:00"} for s in segments}
    return a_slice(consent, "segments", {"members": members, "_changed": {}})


def a_request(partner: Partner) -> PartnerRequest:
    return PartnerRequest(
        partner=partner,
        purpose="joint_offers",
        request_id="req-1",
        topic="rapport.customer-events",
        ledger_key=LEDGER_KEY,
    )


def hashed(emails: Sequence[str] = (), phones: Sequence[str] = ()) -> HashedIdentifiers:
    return HashedIdentifiers(
        emails=[security.email_digest(email) for email in emails],
        phones=[security.phone_digest(phone) for phone in phones],
    )


class TestReadingACustomer:
    async def test_only_the_consented_and_registered_slices_with_their_whitelisted_fields(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        consent = a_consent(uow, partner)
        contact_of(uow, consent)
        uow.rows.extend(
            [
                a_slice(
                    consent, "loyalty", {"programs": {"miles": {"points": 120}}, "_credits": ["c1"]}
                ),
                # Consented but not registered by the partner: never shown.
                a_slice(consent, "demographics", {"birth_year": 1990, "city": "London"}),
            ]
        )

        reply = await service.read_customer(uow, a_request(partner), "acme-ref-ada")

        assert reply.ref == "acme-ref-ada"
        assert reply.slices == {
            "contact": {
                "email": ADA_EMAIL,
                "phone": ADA_PHONE,
                "first_name": "Ada",
                "last_name": None,
            },
            "loyalty": {"programs": [{"program": "miles", "points": 120}]},
        }

    async def test_the_reply_is_one_ledger_entry_and_one_disclosed_event_under_one_id(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        consent = a_consent(uow, partner)
        contact_of(uow, consent)

        await service.read_customer(uow, a_request(partner), "acme-ref-ada")

        [event] = uow.outbox.published(PartnerDataDisclosed)
        [entry] = uow.rows.all(Disclosure)
        assert entry.event_id == uow.outbox.ids[0]
        assert (event.customer_id, event.partner_ref, event.slices) == (
            "ada",
            "acme-ref-ada",
            ("contact",),
        )
        # Only fields that carried a value are recorded as disclosed.
        assert entry.fields == ["contact.email", "contact.first_name", "contact.phone"]
        assert uow.rows.get(DisclosureSubject, entry.id).customer_id == "ada"  # type: ignore[union-attr]

    @pytest.mark.parametrize("case", ["unknown", "revoked", "another partner's"])
    async def test_a_ref_without_a_granted_consent_is_unknown_and_discloses_nothing(
        self, uow: FakePartnerShareUnitOfWork, case: str
    ) -> None:
        partner, other = a_partner(uow), a_partner(uow, "globex")
        a_consent(uow, partner, "bob", granted=False)
        a_consent(uow, other, "cy")
        ref = {"unknown": "acme-ref-nobody", "revoked": "acme-ref-bob"}.get(case, "globex-ref-cy")

        with pytest.raises(UnknownRef):
            await service.read_customer(uow, a_request(partner), ref)

        assert (uow.outbox.events, uow.rows.all(Disclosure)) == ([], [])


class TestTheChangesFeed:
    async def test_pages_oldest_change_first_each_customer_disclosed(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        for minutes, customer_id in enumerate(["cy", "ada", "bob"]):
            a_consent(uow, partner, customer_id, minutes=minutes)
        request = a_request(partner)

        first, cursor = await service.read_changes(
            uow, request, changed_since=None, cursor=None, limit=2
        )
        rest, last = await service.read_changes(
            uow, request, changed_since=None, cursor=cursor, limit=2
        )

        assert [c.ref for c in first] == ["acme-ref-cy", "acme-ref-ada"]
        assert [c.ref for c in rest] == ["acme-ref-bob"]
        assert cursor is not None and last is None
        disclosed = uow.outbox.published(PartnerDataDisclosed)
        assert [e.customer_id for e in disclosed] == ["cy", "ada", "bob"]
        assert len(uow.rows.all(Disclosure)) == 3

    async def test_changed_since_leaves_out_older_changes(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        a_consent(uow, partner, "ada", minutes=0)
        a_consent(uow, partner, "bob", minutes=10)

        page, cursor = await service.read_changes(
            uow,
            a_request(partner),
            changed_since=SINCE + timedelta(minutes=5),
            cursor=None,
            limit=10,
        )

        assert ([c.ref for c in page], cursor) == (["acme-ref-bob"], None)

    async def test_a_cursor_that_is_not_ours_is_refused(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)

        with pytest.raises(InvalidRequest):
            await service.read_changes(
                uow, a_request(partner), changed_since=None, cursor="not-a-cursor", limit=10
            )


class TestMatching:
    async def test_hashes_of_a_consenting_contact_match_and_are_audited(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        contact_of(uow, a_consent(uow, partner))

        matches = await service.match(
            uow,
            a_request(partner),
            hashed(emails=[ADA_EMAIL, "nobody@example.com"], phones=[ADA_PHONE]),
        )

        assert [(m.kind, m.hash, m.ref) for m in matches] == [
            ("email", security.email_digest(ADA_EMAIL), "acme-ref-ada"),
            ("phone", security.phone_digest(ADA_PHONE), "acme-ref-ada"),
        ]
        [entry] = uow.rows.all(Disclosure)
        assert (entry.slices, entry.fields) == (
            ["contact"],
            ["contact.email_sha256", "contact.phone_sha256"],
        )
        assert len(uow.outbox.published(PartnerDataDisclosed)) == 1

    @pytest.mark.parametrize(
        ("consented", "registered", "granted"),
        [
            (("loyalty",), ("contact", "loyalty"), True),  # contact not consented
            (("contact",), ("loyalty",), True),  # contact not registered
            (("contact",), ("contact",), False),  # revoked
        ],
    )
    async def test_a_customer_not_sharing_contact_looks_unknown(
        self,
        uow: FakePartnerShareUnitOfWork,
        consented: tuple[str, ...],
        registered: tuple[str, ...],
        granted: bool,
    ) -> None:
        partner = a_partner(uow, slices=registered)
        contact_of(uow, a_consent(uow, partner, slices=consented, granted=granted))

        matches = await service.match(uow, a_request(partner), hashed(emails=[ADA_EMAIL]))

        assert matches == []
        assert (uow.outbox.events, uow.rows.all(Disclosure)) == ([], [])

    async def test_another_partners_match_keys_do_not_match(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner, other = a_partner(uow), a_partner(uow, "globex")
        contact_of(uow, a_consent(uow, other))

        assert await service.match(uow, a_request(partner), hashed(emails=[ADA_EMAIL])) == []


class TestOverlap:
    def three_consenting(
        self, uow: FakePartnerShareUnitOfWork, partner: Partner
    ) -> HashedIdentifiers:
        emails = []
        for customer_id, segments in (("ada", ("vip", "travel")), ("bob", ("vip",)), ("cy", ())):
            consent = a_consent(uow, partner, customer_id)
            email = f"{customer_id}@example.com"
            uow.rows.add(
                MatchKey(
                    partner_id=partner.id,
                    kind="email",
                    digest=security.email_digest(email),
                    customer_id=customer_id,
                )
            )
            if segments:
                uow.rows.add(in_segment(consent, *segments))
            emails.append(email)
        return hashed(emails=[*emails, "stranger@example.com"])

    async def test_counts_and_segments_at_or_above_k_and_nothing_disclosed(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        audience = self.three_consenting(uow, partner)

        reply = await service.overlap(uow, partner, audience, k_threshold=2)

        assert (reply.submitted, reply.matched, reply.suppressed) == (4, 3, False)
        # "travel" has one member: under k, withheld.
        assert [(s.segment_id, s.name, s.count) for s in reply.segments] == [("vip", "Vip", 2)]
        assert (uow.outbox.events, uow.rows.all(Disclosure)) == ([], [])

    async def test_a_count_under_k_is_withheld(self, uow: FakePartnerShareUnitOfWork) -> None:
        partner = a_partner(uow)
        audience = self.three_consenting(uow, partner)

        reply = await service.overlap(uow, partner, audience, k_threshold=4)

        assert (reply.matched, reply.suppressed, reply.segments) == (None, True, [])
        assert (reply.submitted, reply.k_threshold) == (4, 4)

    async def test_no_segments_for_a_partner_not_registered_for_them(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow, slices=("contact",))
        audience = self.three_consenting(uow, partner)

        reply = await service.overlap(uow, partner, audience, k_threshold=2)

        assert (reply.matched, reply.segments) == (3, [])


class TestContributedEvents:
    async def test_an_event_about_a_consenting_customer_is_published(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        a_consent(uow, partner)
        at = utcnow() - timedelta(days=1)
        body = ContributedEvent(
            ref="acme-ref-ada", name="booking.made", properties={"nights": 3}, occurred_at=at
        )

        accepted = await service.contribute_event(uow, a_request(partner), body)

        [event] = uow.outbox.published(PartnerEventContributed)
        assert (event.customer_id, event.partner_id, event.name) == ("ada", "acme", "booking.made")
        assert (event.properties, event.occurred_at) == ({"nights": 3}, at)
        assert (accepted.event_id, accepted.ref, accepted.occurred_at) == (
            uow.outbox.ids[0],
            "acme-ref-ada",
            at,
        )

    async def test_without_a_time_it_happened_now(self, uow: FakePartnerShareUnitOfWork) -> None:
        partner = a_partner(uow)
        a_consent(uow, partner)
        before = utcnow()

        accepted = await service.contribute_event(
            uow, a_request(partner), ContributedEvent(ref="acme-ref-ada", name="visit")
        )

        assert before <= accepted.occurred_at <= utcnow()

    @pytest.mark.parametrize(
        ("offset", "refusal"),
        [(timedelta(minutes=10), "in the future"), (timedelta(days=-31), "older than 30 days")],
    )
    async def test_a_time_too_far_ahead_or_behind_is_refused(
        self, uow: FakePartnerShareUnitOfWork, offset: timedelta, refusal: str
    ) -> None:
        partner = a_partner(uow)
        a_consent(uow, partner)
        body = ContributedEvent(ref="acme-ref-ada", name="visit", occurred_at=utcnow() + offset)

        with pytest.raises(InvalidRequest, match=refusal):
            await service.contribute_event(uow, a_request(partner), body)

        assert uow.outbox.events == []

    async def test_a_customer_who_revoked_looks_unknown(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        a_consent(uow, partner, granted=False)

        with pytest.raises(UnknownRef):
            await service.contribute_event(
                uow, a_request(partner), ContributedEvent(ref="acme-ref-ada", name="visit")
            )

        assert uow.outbox.events == []


def a_job(consent: PartnerConsent, token: int = 1) -> FillJob:
    return FillJob(
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        token=token,
        slices=frozenset(consent.slices) & rules.FILLED_FROM_PROFILE,
        attempts=0,
    )


def pending(consent: PartnerConsent) -> PartnerConsent:
    consent.fill_pending, consent.fill_token, consent.fill_next_at = True, 1, SINCE
    return consent


PROFILE_ADA = {
    "email": ADA_EMAIL,
    "phone": ADA_PHONE,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "birth_date": "1990-05-01",
    "city": "London",
}


class TestCompletingAFill:
    async def test_contact_and_demographics_from_profile_with_the_contacts_match_keys(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow, slices=("contact", "demographics"))
        consent = pending(a_consent(uow, partner, slices=("contact", "demographics")))

        done = await fills.complete_fill(
            uow, a_job(consent), customer=PROFILE_ADA, metrics=None, fetched_at=utcnow()
        )

        assert done is True
        contact = uow.rows.get(SharedSlice, "ada", "acme", "contact")
        demographics = uow.rows.get(SharedSlice, "ada", "acme", "demographics")
        assert contact is not None and contact.data["last_name"] == "Lovelace"
        assert demographics is not None and demographics.data["birth_year"] == 1990
        assert {(k.kind, k.digest) for k in uow.rows.all(MatchKey)} == {
            ("email", security.email_digest(ADA_EMAIL)),
            ("phone", security.phone_digest(ADA_PHONE)),
        }
        assert (consent.fill_pending, consent.fill_next_at) == (False, None)

    async def test_a_new_contact_replaces_the_old_match_keys(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        consent = pending(a_consent(uow, partner, slices=("contact",)))
        contact_of(uow, consent)
        moved = {**PROFILE_ADA, "email": "ada@new.example.com", "phone": None}

        await fills.complete_fill(
            uow, a_job(consent), customer=moved, metrics=None, fetched_at=utcnow()
        )

        assert [(k.kind, k.digest) for k in uow.rows.all(MatchKey)] == [
            ("email", security.email_digest("ada@new.example.com"))
        ]
        contact = uow.rows.get(SharedSlice, "ada", "acme", "contact")
        assert contact is not None and contact.data["email"] == "ada@new.example.com"

    async def test_the_purchase_summary_from_profiles_metrics(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow, slices=("purchase_summary",))
        consent = pending(a_consent(uow, partner, slices=("purchase_summary",)))

        await fills.complete_fill(
            uow,
            a_job(consent),
            customer=None,
            metrics={"orders_count": 4, "revenue": "99.50", "currency": "GBP"},
            fetched_at=utcnow(),
        )

        summary = uow.rows.get(SharedSlice, "ada", "acme", "purchase_summary")
        assert summary is not None
        assert (summary.data["orders_count"], summary.data["revenue"]) == (4, {"GBP": "99.50"})

    async def test_without_metrics_the_summary_starts_empty_or_is_kept(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow, slices=("purchase_summary",))
        ada = pending(a_consent(uow, partner, "ada", slices=("purchase_summary",)))
        bob = pending(a_consent(uow, partner, "bob", slices=("purchase_summary",)))
        counted = {"orders_count": 2, "revenue": {"EUR": "10"}, "_orders": ["o1", "o2"]}
        uow.rows.add(a_slice(bob, "purchase_summary", counted))

        for consent in (ada, bob):
            await fills.complete_fill(
                uow, a_job(consent), customer=None, metrics=None, fetched_at=utcnow()
            )

        started = uow.rows.get(SharedSlice, "ada", "acme", "purchase_summary")
        kept = uow.rows.get(SharedSlice, "bob", "acme", "purchase_summary")
        assert started is not None and started.data["orders_count"] == 0
        assert started.data["counted_since"] == SINCE.isoformat()
        assert kept is not None and kept.data == counted

    @pytest.mark.parametrize("change", ["token moved", "revoked", "gone"])
    async def test_a_consent_that_changed_meanwhile_is_left_alone(
        self, uow: FakePartnerShareUnitOfWork, change: str
    ) -> None:
        partner = a_partner(uow)
        consent = pending(a_consent(uow, partner, slices=("contact",)))
        job = a_job(consent)
        if change == "token moved":
            consent.fill_token += 1
        elif change == "revoked":
            consent.granted = False
        else:
            uow.rows.delete(consent)

        done = await fills.complete_fill(
            uow, job, customer=PROFILE_ADA, metrics=None, fetched_at=utcnow()
        )

        assert done is False
        assert (uow.rows.all(SharedSlice), uow.rows.all(MatchKey)) == ([], [])
