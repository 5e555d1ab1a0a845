"""The consents as the partner API and the filler use them, against in-memory stores: which
consents a partner's changes feed holds and in what order, which consents are due a fill
from profile and how a fetch leases them, and the backoff after profile failed."""

from datetime import UTC, datetime, timedelta

import pytest

from rapport_events.base import utcnow
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.partners.service import PartnerRequest
from rapport_partner_share.slices import fills, service
from rapport_partner_share.testing import FakePartnerShareUnitOfWork, add_partner

SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def a_partner(uow: FakePartnerShareUnitOfWork, partner_id: str = "acme") -> Partner:
    return add_partner(
        uow, partner_id, slices=("contact", "demographics", "loyalty", "purchase_summary")
    )


def a_consent(
    uow: FakePartnerShareUnitOfWork,
    customer_id: str,
    partner_id: str = "acme",
    *,
    granted: bool = True,
    minutes: int = 0,
    slices: tuple[str, ...] = ("contact", "loyalty"),
) -> PartnerConsent:
    consent = PartnerConsent(
        customer_id=customer_id,
        partner_id=partner_id,
        ref=f"{partner_id}-ref-{customer_id}",
        granted=granted,
        slices=list(slices) if granted else [],
        version=1,
        granted_at=SINCE if granted else None,
        changed_at=SINCE + timedelta(minutes=minutes),
    )
    uow.rows.add(consent)
    return consent


def waiting(consent: PartnerConsent, due_in: timedelta | None = None) -> PartnerConsent:
    """The consent waits for profile's data, due `due_in` from now (never tried: None)."""
    consent.fill_pending, consent.fill_token = True, 7
    consent.fill_next_at = utcnow() + due_in if due_in is not None else None
    return consent


def a_request(partner: Partner) -> PartnerRequest:
    return PartnerRequest(
        partner=partner,
        purpose="joint_offers",
        request_id="req-1",
        topic="rapport.customer-events",
        ledger_key="ledger-key-for-tests",
    )


async def feed(
    uow: FakePartnerShareUnitOfWork,
    partner: Partner,
    *,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 10,
) -> tuple[list[str], str | None]:
    """The refs of one page of the partner's changes feed, and the next page's cursor."""
    page, next_cursor = await service.read_changes(
        uow, a_request(partner), changed_since=since, cursor=cursor, limit=limit
    )
    return [customer.ref for customer in page], next_cursor


class TestTheChangesFeed:
    async def test_only_the_partners_granted_consents(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        a_partner(uow, "globex")
        a_consent(uow, "ada")
        a_consent(uow, "bob", granted=False, minutes=1)
        a_consent(uow, "cy", "globex", minutes=2)

        assert await feed(uow, partner) == (["acme-ref-ada"], None)

    async def test_changes_at_the_same_moment_page_by_customer_id(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        for customer_id in ("cy", "ada", "bob"):
            a_consent(uow, customer_id, minutes=5)
        a_consent(uow, "dee", minutes=1)

        first, cursor = await feed(uow, partner, limit=2)
        rest, last = await feed(uow, partner, cursor=cursor, limit=2)

        assert first == ["acme-ref-dee", "acme-ref-ada"]
        assert (rest, last) == (["acme-ref-bob", "acme-ref-cy"], None)

    async def test_changed_since_is_exclusive(self, uow: FakePartnerShareUnitOfWork) -> None:
        partner = a_partner(uow)
        a_consent(uow, "ada", minutes=5)
        a_consent(uow, "bob", minutes=6)

        refs, _ = await feed(uow, partner, since=SINCE + timedelta(minutes=5))

        assert refs == ["acme-ref-bob"]

    async def test_a_completed_fill_puts_the_consent_back_in_the_feed(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        ada = waiting(a_consent(uow, "ada", slices=("contact",)), due_in=timedelta(0))
        a_consent(uow, "bob", minutes=1)
        _, cursor = await feed(uow, partner, limit=1)
        [job] = await fills.due_fills(uow)

        await fills.complete_fill(
            uow, job, customer={"email": "ada@example.com"}, metrics=None, fetched_at=utcnow()
        )

        refs, _ = await feed(uow, partner, cursor=cursor)
        assert refs == ["acme-ref-bob", "acme-ref-ada"]
        assert ada.fill_pending is False


class TestDueFills:
    async def test_granted_consents_waiting_and_due_are_leased_with_their_profile_slices(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        a_partner(uow)
        ada = waiting(a_consent(uow, "ada", slices=("contact", "loyalty")), due_in=None)
        waiting(a_consent(uow, "bob"), due_in=timedelta(minutes=5))  # not due yet
        waiting(a_consent(uow, "cy", granted=False), due_in=None)  # revoked meanwhile
        a_consent(uow, "dee")  # nothing to fetch
        before = utcnow()

        [job] = await fills.due_fills(uow, lease=timedelta(seconds=30))

        assert (job.customer_id, job.partner_id, job.token, job.attempts) == ("ada", "acme", 7, 0)
        # Loyalty grows from events; only the contact is asked of profile.
        assert job.slices == frozenset({"contact"})
        assert (job.needs_customer, job.needs_metrics) == (True, False)
        assert ada.fill_next_at is not None
        assert (
            before + timedelta(seconds=30) <= ada.fill_next_at <= utcnow() + timedelta(seconds=30)
        )

    async def test_a_leased_consent_is_not_due_again_until_the_lease_runs_out(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        a_partner(uow)
        waiting(a_consent(uow, "ada"), due_in=timedelta(0))

        first = await fills.due_fills(uow)
        again = await fills.due_fills(uow)

        assert ([job.customer_id for job in first], again) == (["ada"], [])

    async def test_the_earliest_due_first_up_to_the_limit(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        a_partner(uow)
        waiting(a_consent(uow, "ada"), due_in=timedelta(seconds=-10))
        waiting(a_consent(uow, "bob"), due_in=timedelta(seconds=-30))
        waiting(a_consent(uow, "cy"), due_in=timedelta(seconds=-20))

        jobs = await fills.due_fills(uow, limit=2)

        assert [job.customer_id for job in jobs] == ["bob", "cy"]


class TestPostponingAFill:
    async def test_each_failure_waits_twice_as_long(self, uow: FakePartnerShareUnitOfWork) -> None:
        a_partner(uow)
        ada = waiting(a_consent(uow, "ada"), due_in=timedelta(0))
        [job] = await fills.due_fills(uow)
        waits = []

        for _ in range(3):
            before = utcnow()
            await fills.postpone_fill(uow, job, "profile answered 503")
            assert ada.fill_next_at is not None
            waits.append(round((ada.fill_next_at - before).total_seconds()))

        assert ada.fill_attempts == 3
        assert waits == [1, 2, 4]

    async def test_the_wait_is_capped_at_five_minutes(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        a_partner(uow)
        ada = waiting(a_consent(uow, "ada"), due_in=timedelta(0))
        ada.fill_attempts = 20
        [job] = await fills.due_fills(uow)
        before = utcnow()

        await fills.postpone_fill(uow, job, "timeout")

        assert ada.fill_next_at is not None
        assert ada.fill_next_at - before <= fills.FILL_MAX_BACKOFF + timedelta(seconds=1)
        assert ada.fill_next_at - before >= fills.FILL_MAX_BACKOFF

    @pytest.mark.parametrize("change", ["token moved", "gone"])
    async def test_a_consent_that_changed_meanwhile_keeps_its_schedule(
        self, uow: FakePartnerShareUnitOfWork, change: str
    ) -> None:
        a_partner(uow)
        ada = waiting(a_consent(uow, "ada"), due_in=timedelta(0))
        [job] = await fills.due_fills(uow)
        leased_until = ada.fill_next_at
        if change == "token moved":
            ada.fill_token += 1
        else:
            uow.rows.delete(ada)

        await fills.postpone_fill(uow, job, "timeout")

        assert (ada.fill_attempts, ada.fill_next_at) == (0, leased_until)
