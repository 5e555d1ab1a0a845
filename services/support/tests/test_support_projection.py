"""Support's projection of the log (customers, consents, products, merges, erasure) on a real
database, SQLite and PostgreSQL."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from rapport_events.db import SessionFactory, transaction
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    LineItem,
    OrderCompleted,
)
from rapport_support import lifecycle
from rapport_support.customers import projection as customer_projection
from rapport_support.customers import service as customer_service
from rapport_support.customers.models import SupportContext
from rapport_support.customers.store import SqlCustomerStore
from rapport_support.errors import Conflict, CustomerNotFound
from rapport_support.mentions import service as mention_service
from rapport_support.mentions.models import MentionCreate
from rapport_support.products import projection as product_projection
from rapport_support.settings import Settings
from rapport_support.tickets import service as ticket_service
from rapport_support.tickets.models import CommentCreate, TicketCreate, TicketUpdate
from rapport_support.unit_of_work import SqlSupportUnitOfWork

BOUGHT_AT = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


def registered(customer_id: str = "cust-1", **overrides: object) -> CustomerRegistered:
    values: dict[str, object] = {
        "customer_id": customer_id,
        "email": "ada@example.com",
        "phone": "+44 20 7946 0958",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
        "city": "London",
        "social_handles": {"twitter": "@Ada_L"},
        "occurred_at": BOUGHT_AT - timedelta(days=30),
    }
    values.update(overrides)
    return CustomerRegistered(**values)  # type: ignore[arg-type]


def order(
    customer_id: str = "cust-1", order_id: str = "ord-1", **overrides: object
) -> OrderCompleted:
    values: dict[str, object] = {
        "customer_id": customer_id,
        "order_id": order_id,
        "occurred_at": BOUGHT_AT,
        "revenue": Decimal("1567.50"),
        "items": (
            LineItem(
                product_id="sku-bx2",
                product_model="Barista X2",
                category="kitchen",
                price=Decimal("349"),
                serial_number="BX2-0042",
            ),
            LineItem(product_id="sku-beans", name="House blend 1 kg", price=Decimal("18.50")),
            LineItem(
                product_id="sku-zb14",
                product_model="ZenBook 14",
                category="Laptops",
                price=Decimal("1200"),
            ),
            LineItem(product_id="sku-kettle", product_model="K1", price=Decimal("30")),
        ),
    }
    values.update(overrides)
    return OrderCompleted(**values)  # type: ignore[arg-type]


def consent(granted: bool, version: int, **overrides: object) -> ConsentGranted | ConsentRevoked:
    values: dict[str, object] = {
        "customer_id": "cust-1",
        "purpose": "marketing",
        "channel": "email",
        "source": "web_form",
        "version": version,
    }
    values.update(overrides)
    model = ConsentGranted if granted else ConsentRevoked
    return model(**values)  # type: ignore[arg-type]


async def context(sessions: SessionFactory, customer_id: str = "cust-1") -> SupportContext:
    async with transaction(sessions) as session:
        # A read: the unit of work's outbox (the settings' topic) is never written.
        uow = SqlSupportUnitOfWork(session, Settings(database_url="sqlite:///unused.db"))
        return await customer_service.get_support_context(uow, customer_id, now=BOUGHT_AT)


class TestCustomerRegistered:
    async def test_the_summary_holds_name_contact_and_handles(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())

        customer = (await context(sessions)).customer
        assert customer is not None
        assert (customer.first_name, customer.last_name) == ("Ada", "Lovelace")
        assert (customer.email, customer.phone) == ("ada@example.com", "+44 20 7946 0958")
        assert (customer.country, customer.city, customer.tier) == ("GB", "London", None)
        assert customer.social_handles == {"twitter": "@Ada_L"}

    async def test_over_long_values_are_clipped_not_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(
                session, settings, registered(first_name="A" * 300)
            )

        customer = (await context(sessions)).customer
        assert customer is not None and customer.first_name == "A" * 100


class TestCustomerUpdated:
    async def test_changes_name_contact_and_handles(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            await customer_projection.apply_customer_update(
                session,
                settings,
                CustomerUpdated(
                    customer_id="cust-1",
                    changes={
                        "city": "Manchester",
                        "phone": None,
                        "social_handles": {"instagram": "ada.codes"},
                    },
                ),
            )

        customer = (await context(sessions)).customer
        assert customer is not None
        assert (customer.city, customer.phone) == ("Manchester", None)
        assert customer.social_handles == {"instagram": "ada.codes"}


class TestCustomerValueChanged:
    async def test_the_rep_sees_profiles_tier_and_lifetime_value_the_last_of_a_run_winning(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        def value(orders: int, ltv: str, tier: str) -> CustomerValueChanged:
            return CustomerValueChanged(
                customer_id="cust-1",
                orders=orders,
                revenue=Decimal(ltv) / 4,
                profit=Decimal(ltv) / 4,
                lifetime_value=Decimal(ltv),
                tier=tier,  # type: ignore[arg-type]
            )

        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            await customer_projection.apply_values(
                session, [value(1, "400.00", "silver"), value(2, "1200.00", "gold")]
            )

        customer = (await context(sessions)).customer
        assert customer is not None
        assert (customer.tier, customer.orders, customer.lifetime_value) == (
            "gold",
            2,
            Decimal("1200.00"),
        )
        assert customer.revenue == Decimal("300.00")

    async def test_an_older_change_does_not_overwrite_a_newer_one(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        now = datetime.now(UTC)
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            await customer_projection.apply_customer_update(
                session,
                settings,
                CustomerUpdated(customer_id="cust-1", changes={"city": "York"}, occurred_at=now),
            )
            await customer_projection.apply_customer_update(
                session,
                settings,
                CustomerUpdated(
                    customer_id="cust-1",
                    changes={"city": "Leeds"},
                    occurred_at=now - timedelta(hours=1),
                ),
            )

        customer = (await context(sessions)).customer
        assert customer is not None and customer.city == "York"


class TestConsents:
    async def test_the_newest_version_per_channel_wins(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            await customer_projection.apply_consent(session, consent(True, 1))
            await customer_projection.apply_consent(session, consent(True, 2, channel="sms"))
            await customer_projection.apply_consent(session, consent(False, 3))
            # late copy of version 1
            await customer_projection.apply_consent(session, consent(True, 1))

        customer = (await context(sessions)).customer
        assert customer is not None
        states = {(c.purpose, c.channel): (c.granted, c.version) for c in customer.consents}
        assert states == {("marketing", "email"): (False, 3), ("marketing", "sms"): (True, 2)}


class TestOrderCompleted:
    async def test_products_get_their_warranty_by_model_then_category_then_default(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await product_projection.record_order(session, settings, order())

        products = {p.product_model: p for p in (await context(sessions)).products}
        assert set(products) == {"Barista X2", "ZenBook 14", "K1"}, "consumables are left out"
        assert products["Barista X2"].warranty_ends_on == date(2029, 1, 31)  # model: 36 months
        assert products["ZenBook 14"].warranty_ends_on == date(2027, 1, 31)  # category: 12
        assert products["K1"].warranty_ends_on == date(2028, 1, 31)  # default: 24
        assert products["Barista X2"].serial_number == "BX2-0042"
        assert products["Barista X2"].purchased_at == BOUGHT_AT
        assert products["Barista X2"].under_warranty is True

    async def test_the_same_order_twice_is_recorded_once(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        for _ in range(2):
            async with transaction(sessions) as session:
                await product_projection.record_order(session, settings, order())

        assert len((await context(sessions)).products) == 3

    def test_a_warranty_ending_in_a_shorter_month_ends_on_its_last_day(self) -> None:
        assert product_projection.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
        assert product_projection.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
        assert product_projection.add_months(date(2026, 11, 15), 14) == date(2028, 1, 15)


class TestSupportContext:
    async def test_an_unknown_customer_is_not_found(self, sessions: SessionFactory) -> None:
        with pytest.raises(CustomerNotFound):
            await context(sessions, "nobody")

    async def test_tickets_come_newest_first_with_their_resolution(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            first = await ticket_service.open_ticket(
                SqlSupportUnitOfWork(session, settings),
                settings,
                TicketCreate(customer_id="cust-1", subject="Leaks water"),
                now=BOUGHT_AT,
            )
            await ticket_service.update_ticket(
                SqlSupportUnitOfWork(session, settings),
                settings,
                first.id,
                TicketUpdate(status="resolved", resolution="Replaced the seal"),
                now=BOUGHT_AT + timedelta(hours=1),
            )
            second = await ticket_service.open_ticket(
                SqlSupportUnitOfWork(session, settings),
                settings,
                TicketCreate(customer_id="cust-1", subject="Grinder noisy"),
                now=BOUGHT_AT + timedelta(days=1),
            )

        found = await context(sessions)
        assert [t.id for t in found.tickets] == [second.id, first.id]
        assert found.tickets[1].resolution == "Replaced the seal"
        assert found.open_tickets == 1


class TestCustomerMerged:
    async def test_the_duplicates_rows_move_to_the_survivor(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered("keep"))
            await customer_projection.apply_registration(
                session, settings, registered("dupe", email="ada@work.example", social_handles={})
            )
            await product_projection.record_order(session, settings, order("dupe"))
            ticket = await ticket_service.open_ticket(
                SqlSupportUnitOfWork(session, settings),
                settings,
                TicketCreate(customer_id="dupe", subject="Broken"),
            )
            await lifecycle.apply_merge(
                session,
                settings,
                CustomerMerged(customer_id="keep", merged_customer_id="dupe", reason="email"),
            )

        survivor = await context(sessions, "keep")
        assert survivor.customer is not None and survivor.customer.email == "ada@example.com"
        assert len(survivor.products) == 3
        assert [t.id for t in survivor.tickets] == [ticket.id]
        assert (await context(sessions, "dupe")).customer_id == "keep"

    async def test_a_late_order_of_the_duplicate_reaches_the_survivor(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered("keep"))
            await lifecycle.apply_merge(
                session,
                settings,
                CustomerMerged(customer_id="keep", merged_customer_id="dupe", reason="email"),
            )
            await product_projection.record_order(
                session, settings, order("dupe", order_id="ord-late")
            )
            await customer_projection.apply_registration(session, settings, registered("dupe"))

        survivor = await context(sessions, "keep")
        assert {p.order_id for p in survivor.products} == {"ord-late"}
        async with transaction(sessions) as session:
            assert await SqlCustomerStore(session).get_customer("dupe") is None


class TestCustomerErased:
    async def _a_customer_with_everything(
        self, sessions: SessionFactory, settings: Settings
    ) -> str:
        async with transaction(sessions) as session:
            await customer_projection.apply_registration(session, settings, registered())
            await customer_projection.apply_consent(session, consent(True, 1))
            await product_projection.record_order(session, settings, order())
            ticket = await ticket_service.open_ticket(
                SqlSupportUnitOfWork(session, settings),
                settings,
                TicketCreate(customer_id="cust-1", subject="Leaks"),
            )
            await ticket_service.add_comment(
                SqlSupportUnitOfWork(session, settings),
                ticket.id,
                CommentCreate(body="Hi Ada", author="grace"),
            )
            await mention_service.ingest_mention(
                SqlSupportUnitOfWork(session, settings),
                settings,
                MentionCreate(platform="twitter", handle="@ada_l", text="My Barista X2 is awful"),
            )
        return ticket.id

    async def test_nothing_personal_stays(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        await self._a_customer_with_everything(sessions, settings)

        async with transaction(sessions) as session:
            await lifecycle.apply_erasure(session, settings, CustomerErased(customer_id="cust-1"))

        async with transaction(sessions) as session:
            exported = await lifecycle.export_customer(
                SqlSupportUnitOfWork(session, settings), "cust-1"
            )
            assert await SqlCustomerStore(session).is_erased("cust-1")
        assert exported.records and all(rows == [] for rows in exported.records.values())
        with pytest.raises(CustomerNotFound):
            await context(sessions)

    async def test_late_events_about_the_customer_are_dropped(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await lifecycle.apply_erasure(session, settings, CustomerErased(customer_id="cust-1"))
            await customer_projection.apply_registration(session, settings, registered())
            await product_projection.record_order(session, settings, order())
            await customer_projection.apply_consent(session, consent(True, 5))

        async with transaction(sessions) as session:
            exported = await lifecycle.export_customer(
                SqlSupportUnitOfWork(session, settings), "cust-1"
            )
        assert all(rows == [] for rows in exported.records.values())

    async def test_a_new_ticket_for_the_customer_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        async with transaction(sessions) as session:
            await lifecycle.apply_erasure(session, settings, CustomerErased(customer_id="cust-1"))
        with pytest.raises(Conflict):
            async with transaction(sessions) as session:
                await ticket_service.open_ticket(
                    SqlSupportUnitOfWork(session, settings),
                    settings,
                    TicketCreate(customer_id="cust-1", subject="Hello"),
                )

    async def test_the_export_before_erasure_holds_every_table(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        await self._a_customer_with_everything(sessions, settings)

        async with transaction(sessions) as session:
            exported = await lifecycle.export_customer(
                SqlSupportUnitOfWork(session, settings), "cust-1"
            )

        counts = {table: len(rows) for table, rows in exported.records.items()}
        assert counts["support_customers"] == 1
        assert counts["support_consents"] == 1
        assert counts["support_handles"] == 1
        assert counts["support_products"] == 3
        assert counts["support_tickets"] == 2, "the complaint on twitter opened a second ticket"
        assert counts["support_ticket_comments"] == 1
        assert counts["support_mentions"] == 1
        assert exported.records["support_customers"][0]["registered_at"].endswith("+00:00")
