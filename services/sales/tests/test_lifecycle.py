"""A customer's erasure, merge and export across sales' domains, against in-memory stores:
erased, the person and their links go, accounts and deals stay, and a tombstone is left once;
merged, the duplicate's links and deals are the survivor's; exported, every domain's rows
about the customer and no one else's."""

from decimal import Decimal
from pathlib import Path

from rapport_events.base import utcnow
from rapport_sales import lifecycle
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.activities.models import SalesActivity, SalesActivityContact, SalesDocument
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer
from rapport_sales.opportunities.models import SalesOpportunity, SalesOpportunityContact
from rapport_sales.testing import FakeSalesUnitOfWork


def seeded(uow: FakeSalesUnitOfWork) -> SalesOpportunity:
    now = utcnow()
    account = SalesAccount(name="Acme", created_at=now, updated_at=now)
    deal = SalesOpportunity(
        pipeline_id="default",
        account_id=account.id,
        customer_id="ada",
        name="deal",
        amount=Decimal(10),
        currency="EUR",
        stage="lead",
        probability=Decimal("0.1"),
        created_at=now,
        updated_at=now,
    )
    uow.rows.extend(
        [
            SalesCustomer(customer_id="ada", email="ada@acme.example", updated_at=now),
            account,
            SalesContact(account_id=account.id, customer_id="ada", source="manual", linked_at=now),
            deal,
            SalesOpportunityContact(opportunity_id=deal.id, customer_id="ada"),
        ]
    )
    return deal


class TestErasure:
    async def test_the_person_goes_and_the_company_s_records_stay(
        self, uow: FakeSalesUnitOfWork, tmp_path: Path
    ) -> None:
        deal = seeded(uow)

        await lifecycle.erase_customer(uow, "ada", tmp_path)
        await lifecycle.erase_customer(uow, "ada", tmp_path)

        assert uow.rows.all(SalesCustomer) == []
        assert uow.rows.all(SalesContact) == []
        assert uow.rows.all(SalesOpportunityContact) == []
        assert uow.rows.get(SalesOpportunity, deal.id) is deal and deal.customer_id is None
        assert len(uow.rows.all(SalesAccount)) == 1
        assert [row.customer_id for row in uow.rows.all(ErasedCustomer)] == ["ada"]
        assert uow.outbox.events == []


def activity_about(uow: FakeSalesUnitOfWork, *customer_ids: str) -> SalesActivity:
    """A document activity linked to `customer_ids`, with its document."""
    now = utcnow()
    activity = SalesActivity(kind="document", subject="contract", occurred_at=now)
    uow.rows.add(activity)
    uow.rows.add(
        SalesDocument(
            id=activity.id,
            filename="contract.pdf",
            content_type="application/pdf",
            size=3,
            sha256="0" * 64,
            created_at=now,
        )
    )
    for customer_id in customer_ids:
        uow.rows.add(SalesActivityContact(activity_id=activity.id, customer_id=customer_id))
    return activity


class TestMerge:
    async def test_every_link_and_deal_of_the_duplicate_is_the_survivor_s(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = seeded(uow)
        activity = activity_about(uow, "ada")

        await lifecycle.merge_customer(uow, "grace", "ada")

        assert [link.customer_id for link in uow.rows.all(SalesContact)] == ["grace"]
        assert [link.customer_id for link in uow.rows.all(SalesOpportunityContact)] == ["grace"]
        assert [link.customer_id for link in uow.rows.all(SalesActivityContact)] == ["grace"]
        assert deal.customer_id == "grace"
        assert uow.rows.get(SalesActivity, activity.id) is activity
        assert uow.rows.get(SalesCustomer, "ada") is None
        assert uow.outbox.events == []

    async def test_a_link_both_had_is_kept_once(self, uow: FakeSalesUnitOfWork) -> None:
        deal = seeded(uow)
        uow.rows.add(SalesOpportunityContact(opportunity_id=deal.id, customer_id="grace"))
        activity_about(uow, "ada", "grace")

        await lifecycle.merge_customer(uow, "grace", "ada")

        assert [link.customer_id for link in uow.rows.all(SalesOpportunityContact)] == ["grace"]
        assert [link.customer_id for link in uow.rows.all(SalesActivityContact)] == ["grace"]

    async def test_merging_again_or_into_itself_changes_nothing(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        seeded(uow)
        await lifecycle.merge_customer(uow, "grace", "ada")
        before = [link.model_dump() for link in uow.rows.all(SalesContact)]

        await lifecycle.merge_customer(uow, "grace", "ada")
        await lifecycle.merge_customer(uow, "grace", "grace")

        assert [link.model_dump() for link in uow.rows.all(SalesContact)] == before
        assert uow.outbox.events == []


class TestExport:
    async def test_it_holds_every_domain_s_rows_about_the_customer_and_no_one_else_s(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = seeded(uow)
        activity = activity_about(uow, "ada")
        activity_about(uow, "grace")
        uow.rows.add(SalesCustomer(customer_id="grace", updated_at=utcnow()))

        export = await lifecycle.export_customer(uow, "ada")

        ids = {table: [row.get("id") for row in rows] for table, rows in export.records.items()}
        assert ids["opportunities"] == [deal.id]
        assert ids["activities"] == ids["documents"] == [activity.id]
        found = {table: len(rows) for table, rows in export.records.items()}
        assert found == {
            "customers": 1,
            "account_contacts": 1,
            "opportunities": 1,
            "opportunity_contacts": 1,
            "activities": 1,
            "documents": 1,
            "erasure_tombstones": 0,
        }
        assert all(
            row["customer_id"] == "ada"
            for table in ("customers", "account_contacts", "opportunity_contacts")
            for row in export.records[table]
        )

    async def test_after_the_erasure_only_the_tombstone_and_the_company_s_deal_remain(
        self, uow: FakeSalesUnitOfWork, tmp_path: Path
    ) -> None:
        seeded(uow)
        await lifecycle.erase_customer(uow, "ada", tmp_path)

        export = await lifecycle.export_customer(uow, "ada")

        assert {table for table, rows in export.records.items() if rows} == {"erasure_tombstones"}
        assert export.records["erasure_tombstones"][0]["customer_id"] == "ada"
