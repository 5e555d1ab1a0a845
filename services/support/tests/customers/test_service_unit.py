"""The support context against in-memory stores: who the customer is, what they own, their
tickets and mentions, and an id that a merge moved or an erasure removed."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from rapport_support.customers import service
from rapport_support.customers.models import (
    ErasedCustomer,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    SupportMergedCustomer,
)
from rapport_support.errors import CustomerNotFound
from rapport_support.mentions.models import SupportMention
from rapport_support.products.models import SupportProduct
from rapport_support.testing import FakeSupportUnitOfWork
from rapport_support.tickets.models import SupportTicket

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


def a_customer(customer_id: str = "cust-1") -> SupportCustomer:
    return SupportCustomer(
        customer_id=customer_id,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        tier="gold",
        orders=3,
        revenue=Decimal("120.50"),
        registered_at=NOW - timedelta(days=400),
    )


def a_product(
    line_no: int, days_ago: int, warranty_ends_on: date, **fields: object
) -> SupportProduct:
    values: dict[str, object] = {
        "customer_id": "cust-1",
        "order_id": f"ord-{days_ago}",
        "line_no": line_no,
        "product_id": f"prod-{line_no}",
        "product_model": "Barista X2",
        "purchased_at": NOW - timedelta(days=days_ago),
        "warranty_ends_on": warranty_ends_on,
    }
    values.update(fields)
    return SupportProduct(**values)  # type: ignore[arg-type]


def a_ticket(ticket_id: str, minutes: int, status: str = "new", **fields: object) -> SupportTicket:
    at = NOW + timedelta(minutes=minutes)
    values: dict[str, object] = {
        "id": ticket_id,
        "customer_id": "cust-1",
        "subject": f"Problem {ticket_id}",
        "status": status,
        "created_at": at,
        "updated_at": at,
        "first_response_due_at": at + timedelta(hours=4),
        "resolution_due_at": at + timedelta(days=2),
    }
    values.update(fields)
    return SupportTicket(**values)  # type: ignore[arg-type]


def a_mention(mention_id: str, minutes: int, customer_id: str | None = "cust-1") -> SupportMention:
    at = NOW + timedelta(minutes=minutes)
    return SupportMention(
        id=mention_id,
        platform="twitter",
        handle="@ada",
        handle_key="ada",
        text=f"Mention {mention_id}",
        posted_at=at,
        received_at=at,
        customer_id=customer_id,
        subject_id=customer_id or "twitter:ada",
        sentiment="neutral",
        sentiment_score=0.0,
        kind="question",
    )


def a_consent(purpose: str, scope: str = "", granted: bool = True) -> SupportConsent:
    return SupportConsent(
        customer_id="cust-1",
        purpose=purpose,
        scope=scope,
        channel=scope or None,
        granted=granted,
        version=1,
        changed_at=NOW,
    )


class TestTheCustomer:
    async def test_the_summary_holds_contact_value_handles_and_consents(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.extend(
            [
                a_customer(),
                SupportHandle(
                    platform="twitter", handle_key="ada", handle="@Ada", customer_id="cust-1"
                ),
                SupportHandle(
                    platform="instagram", handle_key="ada.l", handle="ada.l", customer_id="cust-1"
                ),
                SupportHandle(
                    platform="twitter", handle_key="bob", handle="@bob", customer_id="cust-2"
                ),
                a_consent("marketing", "sms", granted=False),
                a_consent("marketing", "email"),
                a_consent("analytics"),
            ]
        )

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        summary = context.customer
        assert summary is not None
        assert (summary.email, summary.tier, summary.orders) == ("ada@example.com", "gold", 3)
        assert summary.revenue == Decimal("120.50")
        # Only this customer's handles, by platform.
        assert summary.social_handles == {"instagram": "ada.l", "twitter": "@Ada"}
        assert [(c.purpose, c.channel, c.granted) for c in summary.consents] == [
            ("analytics", None, True),
            ("marketing", "email", True),
            ("marketing", "sms", False),
        ]
        assert (context.products, context.tickets, context.mentions) == ([], [], [])

    async def test_reading_the_context_writes_and_publishes_nothing(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.extend([a_customer(), a_ticket("t-1", 0)])

        await service.get_support_context(uow, "cust-1", now=NOW)

        assert uow.outbox.events == []
        assert uow.flushes == 0
        assert [row.id for row in uow.rows.all(SupportTicket)] == ["t-1"]


class TestWhatHangsOffTheCustomer:
    async def test_products_newest_purchase_first_with_their_warranty_today(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.extend(
            [
                a_customer(),
                a_product(1, days_ago=800, warranty_ends_on=date(2026, 1, 1)),
                a_product(2, days_ago=10, warranty_ends_on=date(2030, 1, 1)),
                a_product(1, days_ago=10, warranty_ends_on=NOW.date()),
                a_product(1, days_ago=5, warranty_ends_on=date(2030, 1, 1), customer_id="cust-2"),
            ]
        )

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        assert [(p.order_id, p.product_id) for p in context.products] == [
            ("ord-10", "prod-1"),
            ("ord-10", "prod-2"),
            ("ord-800", "prod-1"),
        ]
        # A warranty that ends today still covers today.
        assert [p.under_warranty for p in context.products] == [True, True, False]

    async def test_tickets_newest_first_with_the_open_ones_counted(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.extend(
            [
                a_customer(),
                a_ticket("t-1", 0, status="resolved", resolution="Replaced the seal"),
                a_ticket("t-2", 10, status="open"),
                a_ticket("t-3", 20, status="pending"),
                a_ticket("t-4", 30, status="closed"),
                a_ticket("t-5", 40, customer_id="cust-2"),
            ]
        )

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        assert [t.id for t in context.tickets] == ["t-4", "t-3", "t-2", "t-1"]
        assert context.tickets[-1].resolution == "Replaced the seal"
        assert context.open_tickets == 2

    async def test_only_the_newest_mentions_are_shown(self, uow: FakeSupportUnitOfWork) -> None:
        uow.rows.add(a_customer())
        uow.rows.extend(a_mention(f"m-{n:02}", n) for n in range(service.CONTEXT_MENTIONS + 2))
        uow.rows.add(a_mention("m-unlinked", 99, customer_id=None))

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        assert len(context.mentions) == service.CONTEXT_MENTIONS
        assert context.mentions[0].id == f"m-{service.CONTEXT_MENTIONS + 1:02}"
        assert context.mentions[-1].id == "m-02"

    async def test_products_and_tickets_before_the_customer_is_heard_of(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        # An order or a ticket can arrive before customer.registered does.
        uow.rows.extend(
            [
                a_product(1, days_ago=3, warranty_ends_on=date(2030, 1, 1)),
                a_ticket("t-1", 0),
                SupportHandle(
                    platform="twitter", handle_key="ada", handle="@ada", customer_id="cust-1"
                ),
            ]
        )

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        assert context.customer is None
        assert [p.product_id for p in context.products] == ["prod-1"]
        assert (len(context.tickets), context.open_tickets) == (1, 1)


class TestMergedAndErasedIds:
    async def test_a_merged_id_answers_with_the_survivor(self, uow: FakeSupportUnitOfWork) -> None:
        uow.rows.extend(
            [
                a_customer(),
                a_ticket("t-1", 0),
                SupportMergedCustomer(merged_id="cust-old", customer_id="cust-1", merged_at=NOW),
            ]
        )

        context = await service.get_support_context(uow, "cust-old", now=NOW)

        assert context.customer_id == "cust-1"
        assert context.customer is not None and context.customer.customer_id == "cust-1"
        assert [t.id for t in context.tickets] == ["t-1"]

    async def test_a_chain_of_merges_is_followed_to_its_end(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.extend(
            [
                a_customer("cust-3"),
                SupportMergedCustomer(merged_id="cust-1", customer_id="cust-2", merged_at=NOW),
                SupportMergedCustomer(merged_id="cust-2", customer_id="cust-3", merged_at=NOW),
            ]
        )

        context = await service.get_support_context(uow, "cust-1", now=NOW)

        assert context.customer_id == "cust-3"

    async def test_a_survivor_support_knows_nothing_of_is_not_found_under_its_id(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.add(
            SupportMergedCustomer(merged_id="cust-old", customer_id="cust-1", merged_at=NOW)
        )

        with pytest.raises(CustomerNotFound) as refused:
            await service.get_support_context(uow, "cust-old", now=NOW)

        assert refused.value.message() == "no customer cust-1"

    async def test_an_erased_customer_is_not_found(self, uow: FakeSupportUnitOfWork) -> None:
        uow.rows.add(ErasedCustomer(customer_id="cust-1", erased_at=NOW))

        with pytest.raises(CustomerNotFound, match="cust-1"):
            await service.get_support_context(uow, "cust-1", now=NOW)

    async def test_an_id_merged_into_an_erased_customer_is_not_found_under_its_own_id(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        # Leftover rows under the survivor (a projection still catching up) are not shown.
        uow.rows.extend(
            [
                a_ticket("t-1", 0, customer_id="cust-2"),
                SupportMergedCustomer(merged_id="cust-1", customer_id="cust-2", merged_at=NOW),
                ErasedCustomer(customer_id="cust-2", erased_at=NOW),
            ]
        )

        with pytest.raises(CustomerNotFound) as refused:
            await service.get_support_context(uow, "cust-1", now=NOW)

        assert refused.value.message() == "no customer cust-1"

    async def test_an_id_support_never_heard_of_is_not_found(
        self, uow: FakeSupportUnitOfWork
    ) -> None:
        uow.rows.add(a_customer("cust-2"))

        with pytest.raises(CustomerNotFound, match="nobody"):
            await service.get_support_context(uow, "nobody", now=NOW)
