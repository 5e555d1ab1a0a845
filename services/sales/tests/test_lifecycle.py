"""A customer's erasure across sales' domains, against in-memory stores: the person and
their links go, accounts and deals stay, and a tombstone is left once."""

from decimal import Decimal
from pathlib import Path

from rapport_events.base import utcnow
from rapport_sales import lifecycle
from rapport_sales.accounts.models import SalesAccount, SalesContact
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
