"""The customer overview against in-memory stores: the customer read once, the parts of a
merged duplicate taken from its survivor, an unknown id refused. What the database sums is
tested on both databases in `test_service.py`."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from rapport_profile.analytics.models import Order
from rapport_profile.consents.models import Consent
from rapport_profile.customers.models import Account, AccountMember, Customer
from rapport_profile.errors import CustomerNotFound
from rapport_profile.identity.models import Identity
from rapport_profile.overview import service
from rapport_profile.testing import FakeProfileUnitOfWork

MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)


def a_customer(uow: FakeProfileUnitOfWork, customer_id: str, **fields: Any) -> Customer:
    customer = Customer(
        id=customer_id,
        email=f"{customer_id}@example.com",
        first_name=customer_id.title(),
        last_name="Doe",
        **fields,
    )
    uow.rows.add(customer)
    return customer


def an_order(uow: FakeProfileUnitOfWork, customer_id: str, order_id: str, revenue: str) -> None:
    uow.rows.add(
        Order(
            order_id=order_id,
            customer_id=customer_id,
            subject_id=customer_id,
            revenue=Decimal(revenue),
            occurred_at=MARCH,
        )
    )


def count_reads(uow: FakeProfileUnitOfWork) -> list[str]:
    """Each read of a customer from now on, by the store method that made it."""
    reads: list[str] = []
    for name in ("get_customer", "customer_row", "lock_customer"):
        method = getattr(uow.customers, name)

        async def counted(customer_id: str, _name: str = name, _method: Any = method) -> Any:
            reads.append(_name)
            return await _method(customer_id)

        setattr(uow.customers, name, counted)
    return reads


class TestOverview:
    async def test_the_customer_is_read_once_with_accounts_and_consents(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada", consent_version=3)
        uow.rows.add(Account(id="acme", name="Acme"))
        uow.rows.add(AccountMember(account_id="acme", customer_id="ada"))
        uow.rows.add(
            Consent(
                customer_id="ada", purpose="marketing", channel="email", granted=True, version=3
            )
        )
        an_order(uow, "ada", "o-1", "12.50")
        reads = count_reads(uow)

        view = await service.overview(uow, "ada", types=[], limit=10)

        assert reads == ["customer_row"]
        assert (view.customer.id, [a.id for a in view.customer.accounts]) == ("ada", ["acme"])
        assert (view.consents.customer_id, view.consents.version) == ("ada", 3)
        assert [(c.purpose, c.channel) for c in view.consents.consents] == [("marketing", "email")]
        assert [(s.month, s.orders, s.revenue) for s in view.spend] == [
            ("2026-03", 1, Decimal("12.50"))
        ]

    async def test_a_merged_duplicate_shows_itself_and_its_survivors_value(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        a_customer(uow, "ada")
        a_customer(uow, "dupe", status="merged", merged_into="ada")
        uow.rows.add(Identity(kind="alias", value="dupe", customer_id="ada"))
        an_order(uow, "ada", "o-1", "10.00")
        an_order(uow, "ada", "o-2", "5.00")

        view = await service.overview(uow, "dupe", types=[], limit=10)

        assert (view.customer.id, view.customer.merged_into) == ("dupe", "ada")
        assert view.consents.customer_id == "dupe"
        assert (view.metrics.customer_id, view.timeline.customer_id) == ("ada", "ada")
        assert [(s.orders, s.revenue) for s in view.spend] == [(2, Decimal("15.00"))]

    async def test_an_unknown_customer_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(CustomerNotFound):
            await service.overview(uow, "nobody", types=[], limit=10)
