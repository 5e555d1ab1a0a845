"""What sales learns about customers from the log, against in-memory stores: who they
are, the campaign they clicked last, and nothing more once they are erased."""

from sales_testing import person

from rapport_events.base import utcnow
from rapport_events.types import CampaignMessageClicked, CustomerUpdated
from rapport_sales.customers import projection
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer
from rapport_sales.testing import FakeSalesUnitOfWork


def clicked(customer_id: str, campaign_id: str) -> CampaignMessageClicked:
    return CampaignMessageClicked(
        customer_id=customer_id, campaign_id=campaign_id, message_id="m1", channel="email"
    )


class TestNotingCustomers:
    async def test_a_registration_then_its_updates_in_log_order(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        events = [
            person("ada", email=" Ada@Example.com ", acquisition_channel="search"),
            CustomerUpdated(customer_id="ada", changes={"last_name": "King", "phone": "+44"}),
        ]

        await projection.note_customers(uow, events)

        ada = uow.rows.get(SalesCustomer, "ada")
        assert ada is not None
        assert (ada.email, ada.first_name, ada.last_name, ada.acquisition_channel) == (
            "ada@example.com",
            "Ada",
            "King",
            "search",
        )

    async def test_an_update_of_someone_never_registered_here_adds_nobody(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        await projection.note_customers(
            uow, [CustomerUpdated(customer_id="bob", changes={"first_name": "Bob"})]
        )

        assert uow.rows.all(SalesCustomer) == []

    async def test_the_erased_stay_erased(self, uow: FakeSalesUnitOfWork) -> None:
        uow.rows.add(ErasedCustomer(customer_id="ada", erased_at=utcnow()))

        await projection.note_customers(uow, [person("ada")])
        await projection.note_clicks(uow, [clicked("ada", "spring")])

        assert uow.rows.all(SalesCustomer) == []


class TestNotingClicks:
    async def test_the_last_campaign_clicked_is_kept(self, uow: FakeSalesUnitOfWork) -> None:
        await projection.note_customers(uow, [person("ada")])

        await projection.note_clicks(uow, [clicked("ada", "spring"), clicked("ada", "summer")])
        await projection.note_clicks(uow, [clicked("nobody", "spring")])

        ada = uow.rows.get(SalesCustomer, "ada")
        assert ada is not None and ada.last_campaign_id == "summer"
        assert len(uow.rows.all(SalesCustomer)) == 1
