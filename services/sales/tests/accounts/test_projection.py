"""Segment group calls (profile's account.joined) against in-memory stores: the account is
made on its first call, filled by later ones, and each caller becomes its contact once."""

from rapport_events.base import utcnow
from rapport_events.types import AccountJoined
from rapport_sales.accounts import projection
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.customers.models import ErasedCustomer
from rapport_sales.testing import FakeSalesUnitOfWork


def joined(customer_id: str, **fields: object) -> AccountJoined:
    return AccountJoined(customer_id=customer_id, account_id="acme-1", **fields)  # type: ignore[arg-type]


class TestGroupCalls:
    async def test_the_first_call_makes_the_account_and_later_ones_fill_it(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        await projection.join_accounts(
            uow,
            [
                joined("ada"),
                joined(
                    "bob",
                    name="Acme",
                    traits={"industry": "coffee", "website": "https://Acme.example/about"},
                ),
                joined("ada", traits={"plan": "gold"}),
            ],
        )

        [account] = uow.rows.all(SalesAccount)
        assert (account.external_id, account.name, account.industry, account.domain) == (
            "acme-1",
            "Acme",
            "coffee",
            "acme.example",
        )
        assert account.traits["plan"] == "gold"
        links = sorted((c.customer_id, c.source) for c in uow.rows.all(SalesContact))
        assert links == [("ada", "group"), ("bob", "group")]

    async def test_an_erased_caller_is_not_linked(self, uow: FakeSalesUnitOfWork) -> None:
        uow.rows.add(ErasedCustomer(customer_id="eve", erased_at=utcnow()))

        await projection.join_accounts(uow, [joined("eve", name="Acme")])

        assert (uow.rows.all(SalesAccount), uow.rows.all(SalesContact)) == ([], [])
