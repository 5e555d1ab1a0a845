"""Merges and unmerges against in-memory stores: the merges refused (which change and
publish nothing), what follows the survivor (rows, identities, segments, metrics), what is
published and in which order, and what an unmerge gives back."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rapport_events.types import (
    ConsentRevoked,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
)
from rapport_profile.analytics.models import CustomerMetrics, Order
from rapport_profile.consents import service as consent_service
from rapport_profile.consents.models import Consent, ConsentUpdate
from rapport_profile.customers.models import AccountMember, Customer, SegmentMembership
from rapport_profile.errors import Conflict, CustomerNotFound, InvalidRequest
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity import service
from rapport_profile.identity.models import Identity, Merge
from rapport_profile.testing import FakeProfileUnitOfWork
from rapport_profile.timeline.models import TimelineEntry

DAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> Customer:
    customer = Customer(id=customer_id, email=f"{customer_id}@example.com", **fields)
    uow.rows.add(customer)
    return customer


def an_order(
    uow: FakeProfileUnitOfWork, order_id: str, customer_id: str, revenue: str, days: int = 0
) -> Order:
    order = Order(
        order_id=order_id,
        customer_id=customer_id,
        subject_id=customer_id,
        revenue=Decimal(revenue),
        cost=Decimal(revenue) / 2,
        occurred_at=DAY + timedelta(days=days),
    )
    uow.rows.add(order)
    return order


def an_entry(uow: FakeProfileUnitOfWork, event_id: str, customer_id: str) -> TimelineEntry:
    entry = TimelineEntry(
        id=event_id,
        customer_id=customer_id,
        subject_id=customer_id,
        type="rapport.page.viewed.v1",
        source="/services/profile",
        occurred_at=DAY,
        data={},
    )
    uow.rows.add(entry)
    return entry


async def merge(uow: FakeProfileUnitOfWork, survivor: str, merged: str) -> Merge:
    return await service.merge(uow, survivor, merged, reason="manual", actor="agent:grace")


async def choose(uow: FakeProfileUnitOfWork, customer_id: str, **body: Any) -> None:
    await consent_service.set_consent(uow, customer_id, ConsentUpdate.model_validate(body))


class TestMergesRefused:
    async def test_a_customer_cannot_be_merged_into_itself(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")

        with pytest.raises(InvalidRequest, match="into itself"):
            await merge(uow, "ada", "ada")

        assert uow.outbox.events == [] and uow.rows.all(Merge) == []

    async def test_a_record_merged_away_already_is_refused_naming_its_survivor(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe", status="merged", merged_into="grace")

        with pytest.raises(Conflict, match="already merged into grace"):
            await merge(uow, "ada", "dupe")

        assert uow.outbox.events == [] and uow.rows.all(Identity) == []

    async def test_the_survivor_must_be_active(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "ada", status="merged", merged_into="grace")
        a_customer(uow, "dupe")

        with pytest.raises(Conflict, match="merged into grace"):
            await merge(uow, "ada", "dupe")

        assert uow.rows.get(Customer, "dupe").status == "active"  # type: ignore[union-attr]

    async def test_an_unknown_survivor_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "dupe")

        with pytest.raises(CustomerNotFound):
            await merge(uow, "nobody", "dupe")

    async def test_an_id_never_seen_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "ada")

        with pytest.raises(CustomerNotFound, match="visitor-1"):
            await merge(uow, "ada", "visitor-1")

        assert uow.outbox.events == []

    async def test_an_erased_id_is_not_found_though_tracking_used_it(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        an_entry(uow, "e-1", "visitor-1")
        uow.rows.add(Erasure(customer_id="visitor-1"))

        with pytest.raises(CustomerNotFound):
            await merge(uow, "ada", "visitor-1")

    async def test_an_alias_of_another_customer_is_not_merged_again(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        uow.rows.add(Identity(kind="alias", value="old-id", customer_id="grace"))

        with pytest.raises(CustomerNotFound, match="old-id"):
            await merge(uow, "ada", "old-id")


class TestMerge:
    async def test_rows_identities_and_the_record_follow_the_survivor(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        dupe = a_customer(uow, "dupe")
        earlier = a_customer(uow, "older", status="merged", merged_into="dupe")
        uow.rows.add(Identity(kind="alias", value="older", customer_id="dupe"))
        uow.rows.add(Identity(kind="anonymous_id", value="anon-1", customer_id="dupe"))
        an_entry(uow, "e-1", "dupe")
        an_order(uow, "o-1", "dupe", "30")

        merge_row = await merge(uow, "ada", "dupe")

        assert (dupe.status, dupe.merged_into, earlier.merged_into) == ("merged", "ada", "ada")
        assert uow.rows.get(TimelineEntry, "e-1").customer_id == "ada"  # type: ignore[union-attr]
        assert uow.rows.get(Order, "o-1").customer_id == "ada"  # type: ignore[union-attr]
        owners = {(i.kind, i.value): i.customer_id for i in uow.rows.all(Identity)}
        assert owners == {
            ("alias", "older"): "ada",
            ("anonymous_id", "anon-1"): "ada",
            ("alias", "dupe"): "ada",
        }
        assert uow.rows.all(Merge) == [merge_row]
        assert merge_row.snapshot["subjects"] == ["dupe", "older"]
        assert sorted(merge_row.snapshot["identities"]) == [
            ["alias", "older"],
            ["anonymous_id", "anon-1"],
        ]

    async def test_the_metrics_are_the_survivors_with_both_records_orders(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        an_order(uow, "o-1", "ada", "20")
        an_order(uow, "o-2", "dupe", "30", days=5)
        uow.rows.add(CustomerMetrics(customer_id="dupe", orders=1, revenue=Decimal("30")))
        uow.rows.add(CustomerMetrics(customer_id="ada", orders=1, loyalty_points=40))

        await merge(uow, "ada", "dupe")

        metrics = uow.rows.get(CustomerMetrics, "ada")
        assert metrics is not None and uow.rows.get(CustomerMetrics, "dupe") is None
        assert (metrics.orders, metrics.revenue, metrics.profit) == (
            2,
            Decimal("50.00"),
            Decimal("25.00"),
        )
        assert (metrics.first_order_at, metrics.last_order_at) == (DAY, DAY + timedelta(days=5))
        assert metrics.loyalty_points == 40  # the points are not the orders' to reset
        [value] = uow.outbox.published(CustomerValueChanged)
        assert (value.customer_id, value.orders, value.revenue) == ("ada", 2, Decimal("50.00"))

    async def test_customer_merged_is_published_last(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")

        await merge(uow, "ada", "dupe")

        assert uow.outbox.types() == [CustomerValueChanged.TYPE, CustomerMerged.TYPE]
        [merged] = uow.outbox.published(CustomerMerged)
        assert (merged.customer_id, merged.merged_customer_id) == ("ada", "dupe")
        assert (merged.reason, merged.actor) == ("manual", "agent:grace")

    async def test_the_survivor_takes_the_acquisition_channel_it_lacks(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow, "ada")
        a_customer(uow, "dupe", acquisition_channel="newsletter")

        await merge(uow, "ada", "dupe")

        assert ada.acquisition_channel == "newsletter"
        [updated] = uow.outbox.published(CustomerUpdated)
        assert (updated.customer_id, updated.changes) == (
            "ada",
            {"acquisition_channel": "newsletter"},
        )

    async def test_the_survivors_own_acquisition_channel_is_kept(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = a_customer(uow, "ada", acquisition_channel="search")
        a_customer(uow, "dupe", acquisition_channel="newsletter")

        await merge(uow, "ada", "dupe")

        assert ada.acquisition_channel == "search"
        assert uow.outbox.published(CustomerUpdated) == []

    async def test_one_membership_per_segment_and_account_the_survivors_kept(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        uow.rows.extend(
            [
                SegmentMembership(customer_id="ada", segment_id="s-1", segment_name="mine"),
                SegmentMembership(customer_id="dupe", segment_id="s-1", segment_name="theirs"),
                SegmentMembership(customer_id="dupe", segment_id="s-2", segment_name="vip"),
                AccountMember(customer_id="dupe", account_id="acme"),
            ]
        )

        await merge(uow, "ada", "dupe")

        segments = {
            (m.customer_id, m.segment_id, m.segment_name) for m in uow.rows.all(SegmentMembership)
        }
        assert segments == {("ada", "s-1", "mine"), ("ada", "s-2", "vip")}
        assert [(m.customer_id, m.account_id) for m in uow.rows.all(AccountMember)] == [
            ("ada", "acme")
        ]

    async def test_consents_resolve_to_the_most_restrictive_and_the_versions_are_kept(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        await choose(uow, "ada", purpose="marketing", channel="email", granted=True)
        await choose(uow, "dupe", purpose="marketing", channel="email", granted=False)
        uow.outbox.events.clear()

        merge_row = await merge(uow, "ada", "dupe")

        [consent] = uow.rows.all(Consent)
        assert (consent.customer_id, consent.granted, consent.version) == ("ada", False, 2)
        [revoked] = uow.outbox.published(ConsentRevoked)
        assert (revoked.customer_id, revoked.source, revoked.actor) == (
            "ada",
            "merge",
            "agent:grace",
        )
        assert merge_row.snapshot["survivor_consent_versions"] == [1, 2]
        assert uow.outbox.types()[0] == ConsentRevoked.TYPE

    async def test_a_visitor_tracking_used_is_merged_without_a_record(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        an_entry(uow, "e-1", "visitor-1")

        await merge(uow, "ada", "visitor-1")

        assert uow.rows.get(TimelineEntry, "e-1").customer_id == "ada"  # type: ignore[union-attr]
        assert uow.rows.get(Identity, "alias", "visitor-1").customer_id == "ada"  # type: ignore[union-attr]
        assert uow.outbox.published(CustomerMerged)[0].merged_customer_id == "visitor-1"


class TestUnmerge:
    async def test_without_an_open_merge_nothing_is_undone(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        await merge(uow, "ada", "dupe")
        await service.unmerge(uow, "ada", "dupe", actor=None)
        published = len(uow.outbox.events)

        with pytest.raises(CustomerNotFound, match="no merge into ada"):
            await service.unmerge(uow, "ada", "dupe", actor=None)

        assert len(uow.outbox.events) == published

    async def test_the_duplicate_gets_back_its_rows_identities_and_record(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        dupe = a_customer(uow, "dupe")
        uow.rows.add(Identity(kind="anonymous_id", value="anon-1", customer_id="dupe"))
        an_entry(uow, "e-1", "dupe")
        an_entry(uow, "e-2", "ada")
        an_order(uow, "o-1", "dupe", "30")
        merge_row = await merge(uow, "ada", "dupe")
        uow.outbox.events.clear()

        undone = await service.unmerge(uow, "ada", "dupe", actor="agent:grace")

        assert undone is merge_row and undone.undone_at is not None
        assert (dupe.status, dupe.merged_into) == ("active", None)
        owners = {e.id: e.customer_id for e in uow.rows.all(TimelineEntry)}
        assert owners == {"e-1": "dupe", "e-2": "ada"}
        assert uow.rows.get(Order, "o-1").customer_id == "dupe"  # type: ignore[union-attr]
        assert uow.rows.get(Identity, "alias", "dupe") is None
        assert uow.rows.get(Identity, "anonymous_id", "anon-1").customer_id == "dupe"  # type: ignore[union-attr]

    async def test_the_duplicate_is_announced_again_and_both_values_published(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        an_order(uow, "o-1", "dupe", "30")
        await merge(uow, "ada", "dupe")
        uow.outbox.events.clear()

        await service.unmerge(uow, "ada", "dupe", actor=None)

        assert uow.outbox.types() == [
            CustomerRegistered.TYPE,
            CustomerUpdated.TYPE,
            CustomerValueChanged.TYPE,
            CustomerValueChanged.TYPE,
        ]
        [registered] = uow.outbox.published(CustomerRegistered)
        assert (registered.customer_id, registered.email) == ("dupe", "dupe@example.com")
        [updated] = uow.outbox.published(CustomerUpdated)
        assert updated.changes == {"status": "active", "unmerged_from": "ada"}
        values = {v.customer_id: v.orders for v in uow.outbox.published(CustomerValueChanged)}
        assert values == {"ada": 0, "dupe": 1}

    async def test_the_consents_each_record_had_come_back(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        await choose(uow, "ada", purpose="marketing", channel="email", granted=True)
        await choose(uow, "dupe", purpose="marketing", channel="email", granted=False)
        await merge(uow, "ada", "dupe")

        await service.unmerge(uow, "ada", "dupe", actor="agent:grace")

        state = {c.customer_id: c.granted for c in uow.rows.all(Consent)}
        assert state == {"ada": True, "dupe": False}

    async def test_the_latest_open_merge_is_the_one_undone(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe")
        old = Merge(
            customer_id="ada",
            merged_customer_id="dupe",
            reason="manual",
            snapshot={
                "subjects": [],
                "identities": [],
                "survivor_consents": [],
                "merged_consents": [],
            },
            merged_at=DAY - timedelta(days=30),
        )
        uow.rows.add(old)
        latest = await merge(uow, "ada", "dupe")

        undone = await service.unmerge(uow, "ada", "dupe", actor=None)

        assert undone is latest and old.undone_at is None
