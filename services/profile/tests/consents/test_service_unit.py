"""The consents use cases against in-memory stores: what a grant or a withdrawal stores and
publishes, when nothing changes, the refusals, and what merges and unmerges record."""

from typing import Any

import pytest

from rapport_events.types import ConsentGranted, ConsentRevoked
from rapport_profile.consents import service
from rapport_profile.consents.models import Consent, ConsentChange, ConsentUpdate
from rapport_profile.customers.models import Customer
from rapport_profile.errors import Conflict, CustomerNotFound
from rapport_profile.testing import FakeProfileUnitOfWork


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str = "ada", **fields: Any) -> Customer:
    customer = Customer(id=customer_id, email=f"{customer_id}@example.com", **fields)
    uow.rows.add(customer)
    return customer


async def choose(uow: FakeProfileUnitOfWork, customer_id: str = "ada", **body: Any) -> Consent:
    return await service.set_consent(uow, customer_id, ConsentUpdate.model_validate(body))


EMAIL_YES = {"purpose": "marketing", "channel": "email", "granted": True}
EMAIL_NO = {"purpose": "marketing", "channel": "email", "granted": False}


def share(partner_id: str, *slices: str) -> dict[str, Any]:
    return {
        "purpose": "partner_sharing",
        "partner_id": partner_id,
        "slices": list(slices),
        "granted": bool(slices),
    }


class TestGrantingAndRevoking:
    async def test_a_grant_is_stored_entered_in_the_history_and_published(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)

        consent = await choose(uow, **EMAIL_YES, text_version="v3", actor="agent:grace")

        assert (consent.purpose, consent.channel, consent.partner_id) == ("marketing", "email", "")
        assert (consent.granted, consent.version, ada.consent_version) == (True, 1, 1)
        [entry] = uow.rows.all(ConsentChange)
        assert (entry.source, entry.text_version, entry.actor) == ("api", "v3", "agent:grace")
        [granted] = uow.outbox.published(ConsentGranted)
        assert (granted.customer_id, granted.purpose, granted.channel) == (
            "ada",
            "marketing",
            "email",
        )
        assert (granted.partner_id, granted.version, granted.actor) == (None, 1, "agent:grace")

    async def test_a_withdrawal_updates_the_same_row_under_the_next_version(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await choose(uow, **EMAIL_YES)

        consent = await choose(uow, **EMAIL_NO, source="preference-centre")

        assert uow.rows.all(Consent) == [consent]
        assert (consent.granted, consent.version) == (False, 2)
        assert [c.version for c in uow.rows.all(ConsentChange)] == [1, 2]
        assert uow.outbox.types() == ["rapport.consent.granted.v1", "rapport.consent.revoked.v1"]
        [revoked] = uow.outbox.published(ConsentRevoked)
        assert (revoked.source, revoked.version) == ("preference-centre", 2)

    async def test_the_same_choice_again_records_and_publishes_nothing(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)
        await choose(uow, **EMAIL_YES)

        again = await choose(uow, **EMAIL_YES)

        assert (again.version, ada.consent_version) == (1, 1)
        assert len(uow.rows.all(ConsentChange)) == 1
        assert len(uow.outbox.events) == 1

    async def test_a_first_withdrawal_is_a_choice_of_its_own(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)

        consent = await choose(uow, **EMAIL_NO)

        assert (consent.granted, consent.version) == (False, 1)
        assert uow.outbox.types() == ["rapport.consent.revoked.v1"]

    async def test_new_slices_for_a_partner_are_a_new_version(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await choose(uow, **share("acme", "contact"))

        consent = await choose(uow, **share("acme", "segments", "contact"))

        assert (consent.slices, consent.version) == (["contact", "segments"], 2)
        grants = uow.outbox.published(ConsentGranted)
        assert [g.slices for g in grants] == [("contact",), ("contact", "segments")]
        assert {g.partner_id for g in grants} == {"acme"}

    async def test_withdrawing_from_a_partner_drops_its_slices(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await choose(uow, **share("acme", "contact"))

        consent = await choose(uow, **share("acme"))

        assert (consent.granted, consent.slices) == (False, [])
        [revoked] = uow.outbox.published(ConsentRevoked)
        assert (revoked.partner_id, revoked.slices) == ("acme", ())

    async def test_each_channel_and_partner_is_a_consent_of_its_own(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)

        await choose(uow, **EMAIL_YES)
        await choose(uow, purpose="marketing", channel="sms", granted=False)
        await choose(uow, **share("acme", "contact"))
        await choose(uow, **share("globex", "loyalty"))

        keys = {(c.channel, c.partner_id, c.granted) for c in uow.rows.all(Consent)}
        assert keys == {
            ("email", "", True),
            ("sms", "", False),
            ("", "acme", True),
            ("", "globex", True),
        }
        assert ada.consent_version == 4
        assert [e.version for e in uow.outbox.events] == [1, 2, 3, 4]


class TestRefusals:
    async def test_an_unknown_customer_is_not_found_and_nothing_is_recorded(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        with pytest.raises(CustomerNotFound):
            await choose(uow, "nobody", **EMAIL_YES)

        assert uow.rows.all(Consent) == []
        assert uow.outbox.events == []

    async def test_a_customer_merged_away_is_a_conflict_naming_the_survivor(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "dupe", status="merged", merged_into="ada")

        with pytest.raises(Conflict, match="merged into ada"):
            await choose(uow, "dupe", **EMAIL_YES)

        assert uow.rows.all(ConsentChange) == []
        assert uow.outbox.events == []


class TestTheReceipt:
    async def test_it_holds_the_consents_as_they_stand_and_every_change_in_order(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await choose(uow, **EMAIL_YES)
        await choose(uow, **share("acme", "contact"))
        await choose(uow, **EMAIL_NO)

        receipt = await service.receipt(uow, "ada")

        assert receipt.version == 3
        standing = {(c.purpose, c.channel, c.partner_id): c.granted for c in receipt.consents}
        assert standing == {
            ("marketing", "email", None): False,
            ("partner_sharing", None, "acme"): True,
        }
        assert [(h.version, h.granted) for h in receipt.history] == [
            (1, True),
            (2, True),
            (3, False),
        ]

    async def test_an_unknown_customer_has_none(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(CustomerNotFound):
            await service.receipt(uow, "nobody")


class TestSharingRefusedByASignal:
    async def test_the_blanket_refusal_and_each_partner_grant_are_withdrawn(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await choose(uow, **share("acme", "contact"))

        changed = await service.record_refusals(uow, {"ada": "gpc"})

        assert changed == {"ada"}
        revoked = uow.outbox.published(ConsentRevoked)
        assert [(r.partner_id, r.source, r.actor) for r in revoked] == [
            (None, "gpc", "tracking"),
            ("acme", "gpc", "tracking"),
        ]

    async def test_a_record_already_refusing_changes_nothing(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow)
        await service.record_refusals(uow, {"ada": "gpc"})
        published = len(uow.outbox.events)

        assert await service.record_refusals(uow, {"ada": "gpc"}) == set()
        assert len(uow.outbox.events) == published

    async def test_a_visitor_keeps_the_refusal_unpublished(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        changed = await service.record_refusals(uow, {"anon-1": "gpc"})

        assert changed == {"anon-1"}
        [kept] = uow.rows.all(Consent)
        assert (kept.customer_id, kept.purpose, kept.partner_id, kept.granted) == (
            "anon-1",
            "partner_sharing",
            "",
            False,
        )
        [entry] = uow.rows.all(ConsentChange)
        assert (entry.source, entry.actor) == ("gpc", "tracking")
        assert uow.outbox.events == []

    async def test_a_customer_merged_away_is_left_alone(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "dupe", status="merged", merged_into="ada")

        await service.record_refusals(uow, {"dupe": "gpc"})

        assert uow.rows.all(Consent) == []
        assert uow.outbox.events == []


class TestMerges:
    async def test_the_survivor_takes_the_most_restrictive_choice_and_the_duplicates_go(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)
        a_customer(uow, "dupe")
        await choose(uow, **EMAIL_YES)
        await choose(uow, "dupe", **EMAIL_NO)
        await choose(uow, "dupe", purpose="analytics", granted=True)
        uow.outbox.events.clear()

        await service.restrict_consents(uow, ada, "dupe", "agent:grace")

        standing = {(c.customer_id, c.purpose, c.channel): c.granted for c in uow.rows.all(Consent)}
        assert standing == {("ada", "marketing", "email"): False, ("ada", "analytics", ""): True}
        assert [(e.source, e.actor) for e in uow.outbox.events] == [
            ("merge", "agent:grace"),
            ("merge", "agent:grace"),
        ]

    async def test_a_carried_blanket_refusal_keeps_its_source(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)
        a_customer(uow, "dupe")
        await service.record_refusals(uow, {"dupe": "gpc"})

        await service.restrict_consents(uow, ada, "dupe", None)

        [carried] = [c for c in uow.rows.all(ConsentChange) if c.customer_id == "ada"]
        assert (carried.partner_id, carried.granted, carried.source) == ("", False, "gpc")

    async def test_an_unmerge_withdraws_a_carried_grant_before_removing_it(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow)
        await choose(uow, **share("acme", "contact"))
        absent = {**share("acme"), "channel": "", "absent": True}

        await service.restore_consents(uow, ada, [absent], "agent:grace")

        assert uow.rows.all(Consent) == []
        [revoked] = uow.outbox.published(ConsentRevoked)
        assert (revoked.partner_id, revoked.source) == ("acme", "unmerge")
        assert uow.flushes == 1

    async def test_two_visitor_ids_fold_into_one_where_the_survivor_has_no_choice(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        await service.record_refusals(uow, {"anon-2": "gpc"})

        await service.fold_consents(uow, "anon-1", "anon-2")

        assert [c.customer_id for c in uow.rows.all(Consent)] == ["anon-1"]
        assert [c.customer_id for c in uow.rows.all(ConsentChange)] == ["anon-1"]
