"""The tracking calls against in-memory stores: what each call publishes and who it is
about (a visitor, a known customer, ids linked by identify and alias), the merges an
identify uncovers, calls refused (which publish and record nothing), duplicates by
messageId, and a batch resolved with set-based look-ups."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from rapport_events.types import (
    AccountJoined,
    ConsentRevoked,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    OrderCompleted,
)
from rapport_profile.consents.models import Consent
from rapport_profile.customers.models import Account, AccountMember, Customer
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity.models import Identity
from rapport_profile.testing import FakeProfileUnitOfWork
from rapport_profile.tracking import service
from rapport_profile.tracking.models import TrackedMessage
from rapport_profile.tracking.parsing import BadTrackingCall, parse_messages

EARLY = datetime(2025, 1, 1, tzinfo=UTC)


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> Customer:
    fields.setdefault("email", f"{customer_id}@example.com")
    customer = Customer(id=customer_id, **fields)
    uow.rows.add(customer)
    return customer


def a_visitor(uow: FakeProfileUnitOfWork, anonymous_id: str, owner: str | None = None) -> str:
    """An anonymous id seen before, owned by `owner` (its own pseudo id by default)."""
    owner = owner or f"anon:{anonymous_id}"
    uow.rows.add(Identity(kind="anonymous_id", value=anonymous_id, customer_id=owner))
    return owner


async def call(uow: FakeProfileUnitOfWork, kind: str, **fields: Any) -> int:
    """One call to /v1/<kind>, parsed as the route parses it."""
    return await service.ingest(uow, parse_messages(fields, kind))


async def batch(uow: FakeProfileUnitOfWork, *items: dict[str, Any], **options: Any) -> int:
    return await service.ingest(uow, parse_messages({"batch": list(items)}, None), **options)


class TestWhoACallIsAbout:
    async def test_a_new_visitor_gets_a_pseudo_id_and_its_interaction(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        applied = await call(uow, "track", anonymousId="a-1", event="Clicked", messageId="m-1")

        [tracked] = uow.outbox.published(InteractionTracked)
        assert applied == 1 and uow.outbox.types() == [InteractionTracked.TYPE]
        assert (tracked.customer_id, tracked.kind, tracked.name) == ("anon:a-1", "track", "Clicked")
        assert uow.rows.get(Identity, "anonymous_id", "a-1").customer_id == "anon:a-1"  # type: ignore[union-attr]
        assert uow.rows.get(TrackedMessage, "m-1").customer_id == "anon:a-1"  # type: ignore[union-attr]

    async def test_a_customer_id_as_user_id_is_that_customer_and_links_the_device(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")

        await call(uow, "page", userId="ada", anonymousId="a-1", category="Docs", name="Pricing")

        [viewed] = uow.outbox.published(InteractionTracked)
        assert (viewed.customer_id, viewed.kind, viewed.name) == ("ada", "page", "Docs Pricing")
        assert uow.rows.get(Identity, "anonymous_id", "a-1").customer_id == "ada"  # type: ignore[union-attr]

    async def test_an_anonymous_id_linked_before_is_about_its_customer(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_visitor(uow, "a-1", owner="ada")

        await call(uow, "screen", anonymousId="a-1", name="Home")

        [viewed] = uow.outbox.published(InteractionTracked)
        assert (viewed.customer_id, viewed.kind, viewed.anonymous_id) == ("ada", "screen", "a-1")

    async def test_an_id_merged_away_is_about_its_survivor(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))

        await call(uow, "track", userId="dupe", event="Clicked")

        assert [e.customer_id for e in uow.outbox.published(InteractionTracked)] == ["ada"]

    async def test_calls_about_an_erased_customer_leave_no_trace(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        uow.rows.add(Erasure(customer_id="ada"))

        applied = await call(uow, "track", userId="ada", event="Clicked", messageId="m-1")

        assert applied == 0 and uow.outbox.events == []
        assert uow.rows.all(TrackedMessage) == [] and uow.rows.all(Identity) == []


class TestWhatACallPublishes:
    async def test_an_order_completed_is_an_order_in_the_shop_currency(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        order = {"type": "track", "userId": "ada", "event": "Order Completed"}
        order["properties"] = {"order_id": "o-1", "revenue": "42.5"}

        await batch(uow, order, currency="USD")

        [completed] = uow.outbox.published(OrderCompleted)
        assert (completed.customer_id, completed.order_id) == ("ada", "o-1")
        assert (completed.revenue, completed.currency) == (Decimal("42.50"), "USD")

    async def test_a_first_campaign_sets_the_acquisition_channel_before_the_call(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        campaign = {"campaign": {"medium": "Email", "source": "newsletter"}}

        await call(uow, "track", userId="ada", event="Clicked", context=campaign)
        await call(
            uow, "track", userId="ada", event="Clicked", context={"campaign": {"medium": "cpc"}}
        )

        [updated] = uow.outbox.published(CustomerUpdated)
        assert updated.changes == {"acquisition_channel": "email"}
        assert uow.outbox.types()[:2] == [CustomerUpdated.TYPE, InteractionTracked.TYPE]
        assert uow.rows.get(Customer, "ada").acquisition_channel == "email"  # type: ignore[union-attr]

    async def test_a_group_call_keeps_the_account_and_one_membership(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        group = {"userId": "ada", "groupId": "acme", "traits": {"name": " Acme ", "plan": "pro"}}

        await call(uow, "group", **group)
        await call(uow, "group", **group)

        account = uow.rows.get(Account, "acme")
        assert account is not None and (account.name, account.traits) == ("Acme", group["traits"])
        assert [(m.customer_id, m.account_id) for m in uow.rows.all(AccountMember)] == [
            ("ada", "acme")
        ]
        assert [(e.customer_id, e.name) for e in uow.outbox.published(AccountJoined)] == [
            ("ada", "Acme"),
            ("ada", "Acme"),
        ]

    async def test_global_privacy_control_refuses_a_customers_sharing_once(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        clicks = [{"type": "track", "userId": "ada", "event": f"E{i}"} for i in range(3)]

        await batch(uow, *clicks, gpc=True)

        revoked = uow.outbox.published(ConsentRevoked)
        assert revoked and {e.customer_id for e in revoked} == {"ada"}
        assert uow.outbox.types()[:3] == [InteractionTracked.TYPE] * 3

    async def test_a_visitors_refusal_is_kept_on_their_id_and_not_published(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        await call(uow, "page", anonymousId="a-1", context={"gpc": True})

        assert uow.outbox.types() == [InteractionTracked.TYPE]
        [kept] = uow.rows.all(Consent)
        assert (kept.customer_id, kept.granted) == ("anon:a-1", False)


class TestIdentifyAndAlias:
    async def test_an_identify_with_a_new_email_registers_and_folds_the_visitor_in(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        await call(uow, "page", anonymousId="a-1")
        traits = {"email": "Ada@Example.com", "firstName": "Ada", "plan": "pro"}

        await call(uow, "identify", userId="u-1", anonymousId="a-1", traits=traits)

        [registered] = uow.outbox.published(CustomerRegistered)
        ada = registered.customer_id
        assert uow.rows.get(Customer, ada).email == "ada@example.com"  # type: ignore[union-attr]
        assert uow.outbox.types()[1:3] == [CustomerRegistered.TYPE, CustomerUpdated.TYPE]
        assert uow.outbox.published(CustomerUpdated)[0].changes == {"traits": {"plan": "pro"}}
        merged = uow.outbox.published(CustomerMerged)
        assert [(m.customer_id, m.reason) for m in merged] == [(ada, "identify")]
        assert {i.customer_id for i in uow.rows.all(Identity) if i.kind != "alias"} == {ada}

    async def test_an_identify_naming_a_customers_email_merges_the_visitor_into_them(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada", email="ada@example.com")
        visitor = a_visitor(uow, "a-9")

        await call(uow, "identify", anonymousId="a-9", traits={"email": "ada@example.com"})

        [merged] = uow.outbox.published(CustomerMerged)
        assert (merged.customer_id, merged.merged_customer_id, merged.reason) == (
            "ada",
            visitor,
            "email",
        )
        assert uow.outbox.published(CustomerRegistered) == []
        assert uow.rows.get(Identity, "alias", visitor).customer_id == "ada"  # type: ignore[union-attr]

    async def test_two_customers_found_to_be_one_keep_the_older_record(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "grace", email="grace@example.com", created_at=EARLY)
        a_customer(uow, "ada")

        await call(uow, "identify", userId="ada", traits={"email": "grace@example.com"})

        [merged] = uow.outbox.published(CustomerMerged)
        assert (merged.customer_id, merged.merged_customer_id) == ("grace", "ada")
        assert uow.rows.get(Customer, "ada").merged_into == "grace"  # type: ignore[union-attr]

    async def test_an_identify_of_a_customer_publishes_only_what_changed(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada", first_name="Ada")

        await call(uow, "identify", userId="ada", traits={"firstName": "Ada", "lastName": "L"})

        assert [e.changes for e in uow.outbox.published(CustomerUpdated)] == [{"last_name": "L"}]

    async def test_an_alias_folds_the_previous_visitor_into_the_customer(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        visitor = a_visitor(uow, "a-1")

        await call(uow, "alias", userId="ada", previousId="a-1")

        [merged] = uow.outbox.published(CustomerMerged)
        assert (merged.customer_id, merged.merged_customer_id) == ("ada", visitor)
        assert uow.rows.get(Identity, "anonymous_id", "a-1").customer_id == "ada"  # type: ignore[union-attr]

    async def test_an_alias_of_two_unidentified_ids_folds_without_a_customer(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        visitor = a_visitor(uow, "a-2")

        await call(uow, "alias", userId="u-2", previousId="a-2")

        assert uow.outbox.types() == [CustomerMerged.TYPE]
        [merged] = uow.outbox.published(CustomerMerged)
        assert (merged.customer_id, merged.merged_customer_id) == ("user:u-2", visitor)
        assert uow.rows.get(Identity, "alias", visitor).customer_id == "user:u-2"  # type: ignore[union-attr]
        assert uow.rows.all(Customer) == []


class TestRefusedCalls:
    async def test_a_malformed_order_refuses_the_call_and_records_nothing(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        bad = {"revenue": "lots"}

        with pytest.raises(BadTrackingCall, match="revenue is not a number"):
            await call(uow, "track", userId="ada", event="Order Completed", properties=bad)

        assert uow.outbox.events == [] and uow.rows.all(TrackedMessage) == []

    async def test_a_batch_with_an_invalid_message_is_refused_whole(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        good = {"type": "track", "anonymousId": "a-1", "event": "Clicked"}

        with pytest.raises(BadTrackingCall, match=r"batch\[1\] is a track call without"):
            await batch(uow, good, {"type": "track", "anonymousId": "a-1"})

        assert uow.outbox.events == [] and uow.rows.all(Identity) == []

    async def test_a_bad_item_after_good_ones_publishes_none_of_them(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        good = [{"type": "page", "userId": "ada", "messageId": f"p-{i}"} for i in range(3)]
        bad = {"type": "track", "userId": "ada", "event": "Order Completed"}
        bad["properties"] = {"revenue": -1}

        with pytest.raises(BadTrackingCall, match="must be a number from 0"):
            await batch(uow, *good, bad)

        # The batch's rows are held back until its end; the transaction is rolled back.
        assert uow.outbox.events == [] and uow.rows.all(TrackedMessage) == []


class TestDuplicatesAndBatches:
    async def test_a_message_id_is_applied_once_within_and_across_calls(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        click = {"type": "track", "anonymousId": "a-1", "event": "Clicked", "messageId": "m-1"}

        first = await batch(uow, click, click)
        second = await batch(uow, click)

        assert (first, second) == (1, 0)
        assert len(uow.outbox.published(InteractionTracked)) == 1

    async def test_a_batch_resolves_its_callers_with_set_based_lookups(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        asked: list[str] = []
        for name in ("get_identity", "identities_among", "get_customer", "customers_among"):
            real = getattr(uow.identity if "identit" in name else uow.customers, name)

            async def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
                asked.append(_name)
                return await _real(*args)

            setattr(uow.identity if "identit" in name else uow.customers, name, counted)
        for i in range(20):
            a_visitor(uow, f"known-{i}")
        items = [{"type": "page", "anonymousId": f"known-{i}"} for i in range(20)]
        items += [{"type": "page", "anonymousId": f"new-{i}"} for i in range(20)]

        assert await batch(uow, *items) == 40

        owners = [e.customer_id for e in uow.outbox.published(InteractionTracked)]
        assert owners == [f"anon:known-{i}" for i in range(20)] + [
            f"anon:new-{i}" for i in range(20)
        ]
        assert "get_identity" not in asked and "get_customer" not in asked
        assert asked.count("identities_among") <= 4 and asked.count("customers_among") == 1
