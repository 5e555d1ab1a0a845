"""A merge, an erasure and the export across partner-share's domains, against in-memory
stores: merged, the duplicate's consent moves to the survivor with the slices that start
empty, its partner is told, and the ledger and notices follow; erased, nothing about the
customer stays but the tombstone and the anonymous notices that tell each partner, and
their sent events are taken back; exported, every domain's rows about the customer."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rapport_events.types import CustomerMerged
from rapport_partner_share import lifecycle
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.customers.models import ErasedCustomer, KnownCustomer
from rapport_partner_share.ledger.models import Disclosure, DisclosureSubject
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.slices.models import MatchKey, SharedSlice
from rapport_partner_share.testing import FakePartnerShareUnitOfWork

SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def a_partner(uow: FakePartnerShareUnitOfWork, partner_id: str = "acme") -> Partner:
    partner = Partner(
        id=partner_id,
        name=f"{partner_id.title()} Travel",
        industry="travel",
        slices=["contact", "loyalty", "segments"],
        purposes=["joint_offers"],
        webhook_secret="whsec_x",
        webhook_url="https://partner.example/hook",
        ref_key="00" * 32,
        rate_limit_per_second=5,
        rate_limit_burst=10,
        created_at=SINCE,
    )
    uow.rows.add(partner)
    return partner


def shared_by(uow: FakePartnerShareUnitOfWork, partner: Partner, customer_id: str) -> None:
    """A granted consent of the customer's with its slices, match key, a ledger entry
    about them, an earlier notice, and their known-customer record."""
    uow.rows.add(KnownCustomer(customer_id=customer_id, registered_at=SINCE))
    uow.rows.add(
        PartnerConsent(
            customer_id=customer_id,
            partner_id=partner.id,
            ref=f"{partner.id}-ref-{customer_id}",
            granted=True,
            slices=["contact", "loyalty"],
            version=3,
            granted_at=SINCE,
            changed_at=SINCE,
        )
    )
    for name, data in (
        ("contact", {"email": f"{customer_id}@example.com"}),
        ("loyalty", {"points": 7}),
    ):
        uow.rows.add(
            SharedSlice(
                customer_id=customer_id,
                partner_id=partner.id,
                slice=name,
                data=data,
                updated_at=SINCE,
            )
        )
    uow.rows.add(
        MatchKey(
            partner_id=partner.id, kind="email", digest=f"d-{customer_id}", customer_id=customer_id
        )
    )
    disclosure = Disclosure(
        event_id=f"ev-{customer_id}",
        partner_id=partner.id,
        partner_name=partner.name,
        partner_ref=f"{partner.id}-ref-{customer_id}",
        slices=["contact"],
        fields=["email"],
        purpose="joint_offers",
        request_id="req-1",
        disclosed_at=SINCE,
    )
    uow.rows.add(disclosure)
    assert disclosure.id is not None
    uow.rows.add(DisclosureSubject(disclosure_id=disclosure.id, customer_id=customer_id))
    uow.rows.add(
        Notification(
            partner_id=partner.id,
            customer_id=customer_id,
            partner_ref="old",
            kind="consent.revoked",
            body="{}",
            created_at=SINCE,
        )
    )


def about(uow: FakePartnerShareUnitOfWork, customer_id: str) -> dict[str, int]:
    """How many rows of each table name the customer."""
    found: dict[str, int] = {}
    for model in (
        KnownCustomer,
        PartnerConsent,
        SharedSlice,
        MatchKey,
        DisclosureSubject,
        Notification,
    ):
        rows: list[Any] = uow.rows.where(model, lambda row: row.customer_id == customer_id)
        if rows:
            found[model.__name__] = len(rows)
    return found


def merged(survivor: str = "keep", duplicate: str = "dupe") -> CustomerMerged:
    return CustomerMerged(customer_id=survivor, merged_customer_id=duplicate, reason="email")


class TestMerge:
    async def test_the_consent_moves_with_what_starts_empty_and_the_partner_is_told(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "dupe")

        await lifecycle.merge_customer(uow, merged())

        assert about(uow, "dupe") == {}
        [consent] = uow.rows.all(PartnerConsent)
        assert (consent.customer_id, consent.granted, consent.version) == ("keep", True, 0)
        assert consent.slices == ["contact", "loyalty"] and consent.granted_at == SINCE
        # Loyalty starts empty and grows from events: it moves. Contact is profile's to
        # fill again for the survivor.
        assert [(s.customer_id, s.slice) for s in uow.rows.all(SharedSlice)] == [
            ("keep", "loyalty")
        ]
        assert consent.fill_next_at is not None
        assert uow.rows.all(MatchKey) == []
        assert [s.customer_id for s in uow.rows.all(DisclosureSubject)] == ["keep"]
        kinds = {n.kind: n.customer_id for n in uow.rows.all(Notification)}
        assert kinds == {"consent.revoked": "keep", "customer.merged": "keep"}
        assert uow.outbox.events == []

    async def test_the_survivor_s_own_decision_stands(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "dupe")
        uow.rows.add(
            PartnerConsent(
                customer_id="keep",
                partner_id=partner.id,
                ref="acme-ref-keep",
                granted=False,
                slices=[],
                version=5,
                changed_at=SINCE,
            )
        )

        await lifecycle.merge_customer(uow, merged())

        [consent] = uow.rows.all(PartnerConsent)
        assert (consent.customer_id, consent.granted, consent.version) == ("keep", False, 5)
        assert uow.rows.all(SharedSlice) == []
        [told] = [n for n in uow.rows.all(Notification) if n.kind == "customer.merged"]
        # Nothing is shared under the survivor: the partner is told of no ref to follow.
        assert json.loads(told.body)["merged_into"] is None

    async def test_a_deleted_partner_is_not_told(self, uow: FakePartnerShareUnitOfWork) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "dupe")
        partner.deleted_at = SINCE + timedelta(days=1)

        await lifecycle.merge_customer(uow, merged())

        assert uow.rows.all(PartnerConsent) == []
        assert [n.kind for n in uow.rows.all(Notification)] == ["consent.revoked"]

    async def test_merging_again_into_itself_or_into_an_erased_id_changes_nothing(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "dupe")
        uow.rows.add(ErasedCustomer(customer_id="gone", erased_at=SINCE))

        await lifecycle.merge_customer(uow, merged("dupe", "dupe"))
        await lifecycle.merge_customer(uow, merged("gone", "dupe"))

        assert about(uow, "dupe")["PartnerConsent"] == 1
        await lifecycle.merge_customer(uow, merged())
        notices = len(uow.rows.all(Notification))
        await lifecycle.merge_customer(uow, merged())
        assert len(uow.rows.all(Notification)) == notices
        assert len(uow.rows.all(PartnerConsent)) == 1


class TestErasure:
    async def test_nothing_stays_but_the_tombstone_and_the_notices_that_tell_the_partner(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "ada")
        shared_by(uow, partner, "grace")
        grace = about(uow, "grace")

        await lifecycle.erase_customer(uow, "ada")

        assert about(uow, "ada") == {}
        assert about(uow, "grace") == grace
        assert [t.customer_id for t in uow.rows.all(ErasedCustomer)] == ["ada"]
        erased = [n for n in uow.rows.all(Notification) if n.kind == "customer.erased"]
        assert [(n.customer_id, n.partner_ref) for n in erased] == [(None, "acme-ref-ada")]
        # The ledger keeps its pseudonymous entries; only their link to Ada goes.
        assert len(uow.rows.all(Disclosure)) == 2
        assert uow.outbox.forgotten == ["ada"]
        assert uow.outbox.events == []

    async def test_erasing_twice_changes_nothing_more(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        shared_by(uow, a_partner(uow), "ada")
        await lifecycle.erase_customer(uow, "ada")
        notices = [n.model_dump() for n in uow.rows.all(Notification)]

        await lifecycle.erase_customer(uow, "ada")

        assert [n.model_dump() for n in uow.rows.all(Notification)] == notices
        assert len(uow.rows.all(ErasedCustomer)) == 1
        assert uow.outbox.forgotten == ["ada"]


class TestExport:
    async def test_it_holds_every_domain_s_rows_and_no_one_else_s(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        partner = a_partner(uow)
        shared_by(uow, partner, "ada")
        shared_by(uow, partner, "grace")

        export = await lifecycle.export_customer(uow, "ada")

        counts = {table: len(rows) for table, rows in export.records.items()}
        assert counts == {
            "known_customers": 1,
            "consents": 1,
            "shared_slices": 2,
            "match_keys": 1,
            "disclosures": 1,
            "notifications": 1,
            "erasure_tombstones": 0,
        }
        assert "grace" not in str(export.records)
        assert export.records["consents"][0]["ref"] == "acme-ref-ada"

    async def test_after_the_erasure_only_the_tombstone_remains(
        self, uow: FakePartnerShareUnitOfWork
    ) -> None:
        shared_by(uow, a_partner(uow), "ada")
        await lifecycle.erase_customer(uow, "ada")

        export = await lifecycle.export_customer(uow, "ada")

        assert {table for table, rows in export.records.items() if rows} == {"erasure_tombstones"}
