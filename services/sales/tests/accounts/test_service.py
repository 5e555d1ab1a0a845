"""The accounts use cases against in-memory stores: what an account publishes, its
contacts and their roles, listings, and the refusals."""

from datetime import timedelta

import pytest

from rapport_events.base import utcnow
from rapport_events.types import AccountContactLinked, AccountCreated
from rapport_sales.accounts import service
from rapport_sales.accounts.models import AccountCreate, AccountUpdate, SalesAccount
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import NotFound
from rapport_sales.testing import FakeSalesUnitOfWork


def ada(uow: FakeSalesUnitOfWork) -> str:
    uow.rows.add(
        SalesCustomer(
            customer_id="ada",
            email="ada@acme.example",
            first_name="Ada",
            last_name="Lovelace",
            updated_at=utcnow(),
        )
    )
    return "ada"


class TestOpeningAnAccount:
    async def test_it_is_published_under_the_account_s_own_subject(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        body = AccountCreate(name="Acme", domain="ACME.example", size="51-200", owner="rep:grace")

        account = await service.create_account(uow, body)

        assert (account.domain, account.contacts) == ("acme.example", [])
        [created] = uow.outbox.published(AccountCreated)
        assert created.customer_id == f"account:{account.id}"
        assert (created.name, created.domain, created.size, created.owner) == (
            "Acme",
            "acme.example",
            "51-200",
            "rep:grace",
        )


class TestChangingAnAccount:
    async def test_given_fields_change_and_a_null_name_is_ignored(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = await service.create_account(uow, AccountCreate(name="Acme", owner="rep:a"))

        changed = await service.update_account(
            uow, account.id, AccountUpdate(name=None, owner="rep:b", industry="coffee")
        )

        assert (changed.name, changed.owner, changed.industry) == ("Acme", "rep:b", "coffee")
        assert uow.outbox.types() == [AccountCreated.TYPE]

    async def test_an_unknown_account_is_not_found(self, uow: FakeSalesUnitOfWork) -> None:
        with pytest.raises(NotFound):
            await service.update_account(uow, "nope", AccountUpdate(owner="rep:b"))


class TestContacts:
    async def test_a_first_link_is_published_with_its_role_and_shows_who_they_are(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = await service.create_account(uow, AccountCreate(name="Acme"))

        view = await service.link_contact(uow, account.id, ada(uow), "buyer")

        [contact] = view.contacts
        assert (contact.customer_id, contact.role, contact.source) == ("ada", "buyer", "manual")
        assert (contact.email, contact.first_name, contact.last_name) == (
            "ada@acme.example",
            "Ada",
            "Lovelace",
        )
        [linked] = uow.outbox.published(AccountContactLinked)
        assert (linked.customer_id, linked.account_name, linked.role) == ("ada", "Acme", "buyer")

    async def test_linking_again_changes_the_role_and_publishes_nothing(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = await service.create_account(uow, AccountCreate(name="Acme"))
        await service.link_contact(uow, account.id, ada(uow), "buyer")

        view = await service.link_contact(uow, account.id, "ada", "champion")

        assert [contact.role for contact in view.contacts] == ["champion"]
        assert len(uow.outbox.published(AccountContactLinked)) == 1

    async def test_an_unknown_customer_is_not_found_and_nothing_is_published(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = await service.create_account(uow, AccountCreate(name="Acme"))

        with pytest.raises(NotFound, match="no customer nobody"):
            await service.link_contact(uow, account.id, "nobody", None)
        assert uow.outbox.types() == [AccountCreated.TYPE]

    async def test_unlinking_removes_the_contact_once(self, uow: FakeSalesUnitOfWork) -> None:
        account = await service.create_account(uow, AccountCreate(name="Acme"))
        await service.link_contact(uow, account.id, ada(uow), None)

        await service.unlink_contact(uow, account.id, "ada")

        assert (
            await service.account_view(uow, await service.get_account(uow, account.id))
        ).contacts == []
        with pytest.raises(NotFound, match="not a contact"):
            await service.unlink_contact(uow, account.id, "ada")


class TestListing:
    async def test_newest_first_by_owner_or_a_piece_of_name_or_domain_a_page_at_a_time(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        start = utcnow()
        for n, (name, domain, owner) in enumerate(
            [
                ("Acme", "acme.example", "rep:a"),
                ("Bolt", "bolt.example", "rep:b"),
                ("Crema", "acme-crema.example", "rep:a"),
            ]
        ):
            at = start + timedelta(minutes=n)
            uow.rows.add(
                SalesAccount(name=name, domain=domain, owner=owner, created_at=at, updated_at=at)
            )

        first = await service.list_accounts(uow, None, None, 2, None)
        second = await service.list_accounts(uow, None, None, 2, first.next_cursor)
        acme = await service.list_accounts(uow, None, "ACME", 10, None)
        rep_b = await service.list_accounts(uow, "rep:b", None, 10, None)

        assert [a.name for a in first.items] == ["Crema", "Bolt"]
        assert ([a.name for a in second.items], second.next_cursor) == (["Acme"], None)
        assert [a.name for a in acme.items] == ["Crema", "Acme"]
        assert [a.name for a in rep_b.items] == ["Bolt"]
