"""Export and erasure against in-memory stores: what an erasure publishes, erases and
keeps (tombstones), that asking again changes nothing, unknown customers, the export's
contents, and the erasure's progress as the services finish."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from rapport_events.types import CustomerErased
from rapport_profile.analytics.models import Order
from rapport_profile.consents.models import Consent
from rapport_profile.customers.models import Customer
from rapport_profile.errors import CustomerNotFound
from rapport_profile.gdpr import service
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity.models import Identity
from rapport_profile.testing import FakeProfileUnitOfWork
from rapport_profile.tracking.models import TrackedMessage

DAY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SERVICES = ["profile", "sales"]


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> Customer:
    customer = Customer(id=customer_id, email=f"{customer_id}@example.com", **fields)
    uow.rows.add(customer)
    return customer


def ada_with_history(uow: FakeProfileUnitOfWork) -> None:
    """Ada, a duplicate merged into her, a visitor id she was known by, and their rows."""
    a_customer(uow, "ada")
    a_customer(uow, "dupe", status="merged", merged_into="ada")
    uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))
    uow.rows.add(Identity(kind="alias", value="anon:a-1", customer_id="ada"))
    uow.rows.add(Identity(kind="anonymous_id", value="a-1", customer_id="ada"))
    uow.rows.add(Order(order_id="o-1", customer_id="ada", revenue=Decimal(10), occurred_at=DAY))
    uow.rows.add(TrackedMessage(message_id="m-1", customer_id="anon:a-1"))
    uow.rows.add(
        Consent(customer_id="ada", purpose="analytics", granted=True, version=1, updated_at=DAY)
    )


class TestExport:
    async def test_the_export_lists_the_customers_rows_table_by_table(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada_with_history(uow)
        a_customer(uow, "grace")

        records = await service.local_records(uow, "ada")

        assert [row["id"] for row in records["customers"]] == ["ada"]
        assert [row["id"] for row in records["merged_customers"]] == ["dupe"]
        assert {row["value"] for row in records["identities"]} == {"dupe", "anon:a-1", "a-1"}
        assert [row["order_id"] for row in records["orders"]] == ["o-1"]
        assert records["orders"][0]["revenue"] == "10"  # as JSON, the way the route sends it
        assert [row["purpose"] for row in records["consents"]] == ["analytics"]
        assert records["tracked_messages"] == [] and not service.holds_nothing(records)

    async def test_an_unknown_id_holds_nothing(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "grace")

        records = await service.local_records(uow, "nobody")

        assert set(records) == {name for name, _model, _column in service.HOLDINGS}
        assert service.holds_nothing(records)


class TestErasureRequest:
    async def test_an_erasure_publishes_customer_erased_for_every_id_of_the_person(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada_with_history(uow)

        kept_as, erased = await service.request_erasure(uow, "ada", SERVICES)

        assert kept_as == "ada" and erased == ["ada", "dupe", "anon:a-1"]
        published = uow.outbox.published(CustomerErased)
        assert [(e.customer_id, e.requested_by, e.reason) for e in published] == [
            (each, "api", "gdpr_erasure") for each in erased
        ]
        assert uow.outbox.types() == [CustomerErased.TYPE] * 3
        assert uow.gdpr.shredded == erased

    async def test_nothing_but_tombstones_remains(self, uow: FakeProfileUnitOfWork) -> None:
        ada_with_history(uow)
        a_customer(uow, "grace")

        await service.request_erasure(uow, "ada", SERVICES)

        for each in ("ada", "dupe", "anon:a-1"):
            assert service.holds_nothing(await service.local_records(uow, each))
        assert [c.id for c in uow.rows.all(Customer)] == ["grace"]
        assert uow.rows.all(Identity) == [] and uow.rows.all(TrackedMessage) == []
        main = uow.rows.get(Erasure, "ada")
        assert main is not None and main.services == {"profile": None, "sales": None}
        assert main.subjects == ["ada", "dupe", "anon:a-1"]
        assert uow.rows.get(Erasure, "dupe").subjects == ["dupe"]  # type: ignore[union-attr]

    async def test_a_second_request_changes_and_publishes_nothing(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada_with_history(uow)
        await service.request_erasure(uow, "ada", SERVICES)
        before = list(uow.outbox.events)

        kept_as, erased = await service.request_erasure(uow, "ada", SERVICES)

        assert (kept_as, erased) == ("ada", [])
        assert uow.outbox.events == before and uow.gdpr.shredded == ["ada", "dupe", "anon:a-1"]

    async def test_a_merged_id_erases_the_customer_it_was_folded_into(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada_with_history(uow)

        kept_as, erased = await service.request_erasure(uow, "dupe", SERVICES)

        assert kept_as == "ada" and erased[0] == "ada"
        assert uow.rows.get(Erasure, "ada").services == {"profile": None, "sales": None}  # type: ignore[union-attr]

    async def test_an_unknown_customer_is_not_found_and_nothing_changes(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "grace")

        with pytest.raises(CustomerNotFound, match="nobody"):
            await service.request_erasure(uow, "nobody", SERVICES)

        assert uow.outbox.events == [] and uow.rows.all(Erasure) == []
        assert [c.id for c in uow.rows.all(Customer)] == ["grace"]


class TestErasureStatus:
    async def test_no_erasure_requested_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        a_customer(uow, "ada")

        with pytest.raises(CustomerNotFound, match="no erasure requested"):
            await service.erasure_services(uow, "ada")

    async def test_an_id_erased_with_another_has_no_status_of_its_own(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada_with_history(uow)
        await service.request_erasure(uow, "ada", SERVICES)

        assert await service.erasure_services(uow, "ada") == {"profile": None, "sales": None}
        with pytest.raises(CustomerNotFound):
            await service.erasure_services(uow, "dupe")

    async def test_the_erasure_completes_when_the_last_service_finishes(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        await service.request_erasure(uow, "ada", SERVICES)
        first, last = "2026-03-02T10:00:00+00:00", "2026-03-02T11:00:00+00:00"

        pending = await service.record_progress(uow, "ada", {"profile": first, "sales": None})
        done = await service.record_progress(uow, "ada", {"profile": first, "sales": last})

        assert (pending.status, pending.completed_at) == ("pending", None)
        assert pending.services["profile"] == datetime.fromisoformat(first)
        assert (done.status, done.completed_at) == ("completed", datetime.fromisoformat(last))
        assert done.status_url == "/customers/ada/erasure"
        assert uow.rows.get(Erasure, "ada").completed_at == datetime.fromisoformat(last)  # type: ignore[union-attr]
