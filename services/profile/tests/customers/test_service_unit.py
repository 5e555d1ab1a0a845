"""The customers use cases against in-memory stores: registering and changing a customer,
what each publishes, the duplicates refused (which store and publish nothing), and the
idempotent replay of a registration."""

from typing import Any

import pytest
from pydantic import ValidationError

from rapport_events.types import CustomerRegistered, CustomerUpdated
from rapport_profile.customers import service
from rapport_profile.customers.models import (
    Customer,
    CustomerCreate,
    CustomerUpdate,
    IdempotentRequest,
)
from rapport_profile.errors import (
    Conflict,
    CustomerNotFound,
    DuplicateEmail,
    DuplicateExternalId,
    IdempotencyMismatch,
)
from rapport_profile.identity.models import Identity
from rapport_profile.testing import FakeProfileUnitOfWork


def details(**overrides: Any) -> CustomerCreate:
    values: dict[str, Any] = {
        "email": "Ada@Example.com",
        "phone": "+14155550100",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "gb",
        **overrides,
    }
    return CustomerCreate.model_validate(values)


async def register(uow: FakeProfileUnitOfWork, **overrides: Any) -> Customer:
    return await service.register_customer(uow, details(**overrides))


async def update(uow: FakeProfileUnitOfWork, customer_id: str, **body: Any) -> Customer:
    changes = CustomerUpdate.model_validate(body).changes()
    return await service.update_customer(uow, customer_id, changes)


def merged_away(uow: FakeProfileUnitOfWork, customer: Customer, survivor_id: str) -> None:
    """As a merge leaves it: the record marked, and its id an alias of the survivor."""
    customer.status, customer.merged_into = "merged", survivor_id
    uow.rows.add(Identity(kind="alias", value=customer.id, customer_id=survivor_id))


class TestRegistering:
    async def test_the_customer_is_stored_normalised_and_published(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        customer = await register(uow, external_ids={"shop": "c-1815"})

        assert uow.rows.get(Customer, customer.id) is customer
        assert (customer.email, customer.country, customer.status) == (
            "ada@example.com",
            "GB",
            "active",
        )
        [registered] = uow.outbox.published(CustomerRegistered)
        assert (registered.customer_id, registered.email) == (customer.id, "ada@example.com")
        assert (registered.phone, registered.external_ids) == ("+14155550100", {"shop": "c-1815"})
        assert uow.flushes == 1

    async def test_an_email_taken_in_any_case_is_refused_naming_its_holder(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        first = await register(uow)

        with pytest.raises(DuplicateEmail) as refused:
            await register(uow, email="ADA@example.COM", first_name="Augusta")

        assert refused.value.existing_id == first.id
        assert uow.rows.all(Customer) == [first]
        assert len(uow.outbox.events) == 1

    async def test_an_email_held_by_a_merged_record_names_the_survivor(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        survivor = await register(uow, email="ada@example.org")
        dupe = await register(uow)
        merged_away(uow, dupe, survivor.id)

        with pytest.raises(DuplicateEmail) as refused:
            await register(uow)

        assert refused.value.existing_id == survivor.id

    async def test_an_external_id_taken_by_an_active_customer_is_refused(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        first = await register(uow, external_ids={"shop": "c-1815"})

        with pytest.raises(DuplicateExternalId) as refused:
            await register(uow, email="augusta@example.com", external_ids={"shop": "c-1815"})

        assert refused.value.existing_id == first.id
        assert len(uow.rows.all(Customer)) == 1

    async def test_an_external_id_of_a_merged_record_is_free(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        first = await register(uow, external_ids={"shop": "c-1815"})
        merged_away(uow, first, "someone")

        again = await register(uow, email="augusta@example.com", external_ids={"shop": "c-1815"})

        assert again.external_ids == {"shop": "c-1815"}

    def test_a_phone_not_in_e164_form_is_refused_before_any_use_case(self) -> None:
        with pytest.raises(ValidationError, match="E.164"):
            details(phone="0207 946 0000")


class TestIdempotentRegistration:
    async def test_a_new_key_has_nothing_to_replay(self, uow: FakeProfileUnitOfWork) -> None:
        assert await service.replay(uow, "POST /customers k-1", "hash") is None

    async def test_a_remembered_answer_is_replayed_for_the_same_request(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        fingerprint = service.request_hash(details().model_dump(mode="json"))
        service.remember(uow, "POST /customers k-1", fingerprint, 201, {"id": "c-1"}, "c-1")

        earlier = await service.replay(uow, "POST /customers k-1", fingerprint)

        assert earlier is not None
        assert (earlier.status_code, earlier.body, earlier.customer_id) == (
            201,
            {"id": "c-1"},
            "c-1",
        )
        assert len(uow.rows.all(IdempotentRequest)) == 1

    async def test_the_key_reused_for_another_request_is_refused(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        service.remember(uow, "POST /customers k-1", "one", 201, {}, None)

        with pytest.raises(IdempotencyMismatch):
            await service.replay(uow, "POST /customers k-1", "another")

    def test_the_fingerprint_ignores_key_order(self) -> None:
        assert service.request_hash({"a": 1, "b": 2}) == service.request_hash({"b": 2, "a": 1})


class TestChanging:
    async def test_only_what_really_changed_is_set_and_published(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = await register(uow)
        registered_at = ada.updated_at

        await update(uow, ada.id, first_name="Ada", city="London", country="fr")

        assert (ada.city, ada.country) == ("London", "FR")
        assert ada.updated_at >= registered_at
        [updated] = uow.outbox.published(CustomerUpdated)
        assert (updated.customer_id, updated.changes) == (
            ada.id,
            {"city": "London", "country": "FR"},
        )

    async def test_no_change_publishes_nothing(self, uow: FakeProfileUnitOfWork) -> None:
        ada = await register(uow)
        registered_at = ada.updated_at

        await update(uow, ada.id, email="ADA@example.com", first_name="Ada")

        assert uow.outbox.published(CustomerUpdated) == []
        assert ada.updated_at == registered_at

    async def test_the_changed_email_is_published_as_stored(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = await register(uow)

        await update(uow, ada.id, email="Ada@Lovelace.org")

        assert ada.email == "ada@lovelace.org"
        [updated] = uow.outbox.published(CustomerUpdated)
        assert updated.changes == {"email": "ada@lovelace.org"}

    async def test_an_email_another_customer_holds_is_refused(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = await register(uow)
        grace = await register(uow, email="grace@example.com", first_name="Grace")

        with pytest.raises(DuplicateEmail) as refused:
            await update(uow, grace.id, email="ada@example.com")

        assert refused.value.existing_id == ada.id
        assert grace.email == "grace@example.com"
        assert uow.outbox.published(CustomerUpdated) == []

    async def test_an_external_id_another_customer_holds_is_refused_but_ones_own_is_kept(
        self, uow: FakeProfileUnitOfWork
    ) -> None:
        ada = await register(uow, external_ids={"shop": "c-1"})
        grace = await register(uow, email="grace@example.com", external_ids={"shop": "c-2"})

        with pytest.raises(DuplicateExternalId) as refused:
            await update(uow, grace.id, external_ids={"shop": "c-1"})
        await update(uow, grace.id, external_ids={"shop": "c-2"}, city="Arlington")

        assert refused.value.existing_id == ada.id
        assert grace.external_ids == {"shop": "c-2"}
        [updated] = uow.outbox.published(CustomerUpdated)
        assert updated.changes == {"city": "Arlington"}

    async def test_a_customer_merged_away_cannot_change(self, uow: FakeProfileUnitOfWork) -> None:
        dupe = await register(uow)
        merged_away(uow, dupe, "ada")

        with pytest.raises(Conflict, match="merged into ada"):
            await update(uow, dupe.id, city="London")

        assert dupe.city is None
        assert uow.outbox.published(CustomerUpdated) == []

    async def test_an_unknown_customer_is_not_found(self, uow: FakeProfileUnitOfWork) -> None:
        with pytest.raises(CustomerNotFound):
            await update(uow, "nobody", city="London")

    def test_a_name_cannot_be_cleared(self) -> None:
        with pytest.raises(ValidationError, match="cannot be cleared"):
            CustomerUpdate.model_validate({"first_name": None})
