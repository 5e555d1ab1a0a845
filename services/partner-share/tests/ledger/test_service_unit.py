"""The ledger's use cases against in-memory stores: a disclosure's entry and its event, the
ledger's pages and filters, and a person's entries found by id or pseudonym, before and
after their erasure, with the erasure notice each partner was sent."""

from datetime import UTC, datetime, timedelta

import pytest

from rapport_events.types import PartnerDataDisclosed
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import InvalidRequest
from rapport_partner_share.ledger import service
from rapport_partner_share.ledger.models import Disclosure, DisclosurePublic, DisclosureSubject
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.partners.service import PartnerRequest
from rapport_partner_share.testing import FakePartnerShareUnitOfWork, add_partner

LEDGER_KEY = "ledger-key-for-tests"
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def a_partner(uow: FakePartnerShareUnitOfWork, partner_id: str = "acme") -> Partner:
    return add_partner(uow, partner_id)


def a_consent(partner: Partner, customer_id: str = "ada", version: int = 3) -> PartnerConsent:
    return PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=f"{partner.id}-ref-{customer_id}",
        granted=True,
        slices=["contact", "loyalty"],
        version=version,
        changed_at=SINCE,
    )


def a_request(partner: Partner, request_id: str = "req-1") -> PartnerRequest:
    return PartnerRequest(
        partner=partner,
        purpose="joint_offers",
        request_id=request_id,
        topic="rapport.customer-events",
        ledger_key=LEDGER_KEY,
    )


async def disclosed(
    uow: FakePartnerShareUnitOfWork, partner: Partner, customer_id: str = "ada"
) -> Disclosure:
    """Disclose a customer's slices to a partner, and the ledger entry it left."""
    consent = a_consent(partner, customer_id)
    await service.disclose(
        uow, a_request(partner), consent, ["loyalty", "contact"], ["contact.email"]
    )
    return max(uow.rows.all(Disclosure), key=lambda entry: entry.id or 0)


def erase(uow: FakePartnerShareUnitOfWork, customer_id: str) -> None:
    """What an erasure does to the ledger: the link to the customer goes, the entries stay."""
    for link in uow.rows.where(DisclosureSubject, lambda link: link.customer_id == customer_id):
        uow.rows.delete(link)


class TestDisclosing:
    async def test_the_entry_and_its_event_say_the_same_under_one_id(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)

        entry = await disclosed(uow, partner)

        [event] = uow.outbox.published(PartnerDataDisclosed)
        assert entry.event_id == uow.outbox.ids[0]
        assert event.customer_id == "ada" and event.partner_id == "acme"
        assert event.partner_name == entry.partner_name == "Acme Travel"
        assert event.partner_ref == entry.partner_ref == "acme-ref-ada"
        assert event.slices == ("contact", "loyalty") and entry.slices == ["contact", "loyalty"]
        assert event.fields == ("contact.email",) and entry.fields == ["contact.email"]
        assert event.purpose == entry.purpose == "joint_offers"
        assert event.request_id == entry.request_id == "req-1"
        assert event.consent_version == entry.consent_version == 3
        assert event.occurred_at == entry.disclosed_at

    async def test_the_entry_names_the_person_only_by_pseudonyms(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        entry = await disclosed(uow, a_partner(uow))

        assert entry.subject == security.subject_pseudonym(LEDGER_KEY, "ada")
        assert "ada" not in entry.model_dump_json().replace("acme-ref-ada", "")
        link = uow.rows.get(DisclosureSubject, entry.id)
        assert link is not None and link.customer_id == "ada"

    async def test_a_consent_without_a_version_is_recorded_as_none(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)

        await service.disclose(uow, a_request(partner), a_consent(partner, version=0), [], [])

        [entry] = uow.rows.all(Disclosure)
        assert entry.consent_version is None
        assert uow.outbox.published(PartnerDataDisclosed)[0].consent_version is None


class TestTheLedger:
    async def test_entries_come_newest_first_a_page_at_a_time(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        entries = [await disclosed(uow, partner, f"c{n}") for n in range(5)]

        first, cursor = await service.ledger_page(uow, limit=2)
        second, cursor_2 = await service.ledger_page(uow, cursor=cursor, limit=2)
        last, end = await service.ledger_page(uow, cursor=cursor_2, limit=2)

        pages = [[entry.customer_id for entry in page] for page in (first, second, last)]
        assert pages == [["c4", "c3"], ["c2", "c1"], ["c0"]]
        assert cursor == str(entries[3].id) and end is None
        assert first[0].id == entries[4].event_id

    async def test_it_is_filtered_by_partner_customer_and_time(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, globex = a_partner(uow), a_partner(uow, "globex")
        old = await disclosed(uow, acme, "ada")
        old.disclosed_at = SINCE
        await disclosed(uow, globex, "ada")
        await disclosed(uow, acme, "bob")
        recent = SINCE + timedelta(days=1)

        def who(page: list[DisclosurePublic]) -> list[tuple[str, str | None]]:
            return [(entry.partner_id, entry.customer_id) for entry in page]

        by_partner, _ = await service.ledger_page(uow, partner_id="acme")
        by_customer, _ = await service.ledger_page(uow, customer_id="ada")
        since, _ = await service.ledger_page(uow, since=recent)
        until, _ = await service.ledger_page(uow, until=recent)
        assert who(by_partner) == [("acme", "bob"), ("acme", "ada")]
        assert who(by_customer) == [("globex", "ada"), ("acme", "ada")]
        assert who(since) == [("acme", "bob"), ("globex", "ada")]
        assert who(until) == [("acme", "ada")]

    async def test_an_erased_persons_entries_stay_without_their_id(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        await disclosed(uow, a_partner(uow), "ada")
        erase(uow, "ada")

        everything, _ = await service.ledger_page(uow)
        theirs, _ = await service.ledger_page(uow, customer_id="ada")

        assert [entry.customer_id for entry in everything] == [None]
        assert theirs == []

    @pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "²", "9" * 20, str(2**63)])
    async def test_a_cursor_it_did_not_give_is_refused(
        self, uow: FakePartnerShareUnitOfWork, cursor: str
    ) -> None:
        with pytest.raises(InvalidRequest, match="cursor"):
            await service.ledger_page(uow, cursor=cursor)


class TestAPersonsLedger:
    async def test_the_id_and_the_pseudonym_find_the_same_entries(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme = a_partner(uow)
        entries = [await disclosed(uow, acme, "ada"), await disclosed(uow, acme, "ada")]
        await disclosed(uow, acme, "bob")
        subject = security.subject_pseudonym(LEDGER_KEY, "ada")

        by_id = await service.subject_ledger(uow, LEDGER_KEY, customer_id="ada")
        by_subject = await service.subject_ledger(uow, LEDGER_KEY, subject=subject)

        assert by_id == by_subject
        assert by_id.subject == subject
        assert [d.id for d in by_id.disclosures] == [e.event_id for e in reversed(entries)]

    async def test_they_outlive_the_erasure_with_each_partners_notice(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        acme, globex = a_partner(uow), a_partner(uow, "globex")
        await disclosed(uow, acme, "ada")
        await disclosed(uow, globex, "ada")
        erase(uow, "ada")
        notice = Notification(
            partner_id="acme",
            partner_ref="acme-ref-ada",
            kind="customer.erased",
            body="{}",
            created_at=SINCE,
            acknowledged_at=SINCE + timedelta(hours=1),
            acknowledged_via="webhook",
        )
        uow.rows.add(notice)

        ledger = await service.subject_ledger(uow, LEDGER_KEY, customer_id="ada")

        notices = {d.partner_id: d.erasure_notice for d in ledger.disclosures}
        assert notices["globex"] is None
        assert notices["acme"] is not None and notices["acme"].id == notice.id
        assert notices["acme"].acknowledged and notices["acme"].acknowledged_via == "webhook"

    async def test_it_is_paged_newest_first(self, uow: FakePartnerShareUnitOfWork) -> None:
        acme = a_partner(uow)
        entries = [await disclosed(uow, acme, "ada") for _ in range(3)]

        first = await service.subject_ledger(uow, LEDGER_KEY, customer_id="ada", limit=2)
        rest = await service.subject_ledger(
            uow, LEDGER_KEY, customer_id="ada", cursor=first.next_cursor, limit=2
        )

        assert [d.id for d in first.disclosures] == [entries[2].event_id, entries[1].event_id]
        assert [d.id for d in rest.disclosures] == [entries[0].event_id]
        assert rest.next_cursor is None

    @pytest.mark.parametrize("given", [{}, {"customer_id": "ada", "subject": "a" * 64}])
    async def test_it_needs_exactly_one_of_id_and_pseudonym(
        self, uow: FakePartnerShareUnitOfWork, given: dict[str, str]
    ) -> None:
        with pytest.raises(InvalidRequest, match="either customer_id or subject"):
            await service.subject_ledger(uow, LEDGER_KEY, **given)
