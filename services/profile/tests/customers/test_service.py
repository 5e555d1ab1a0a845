"""Registering a customer on a real database (SQLite and PostgreSQL)."""

import pytest
from sqlmodel import select

from rapport_events.codec import decode
from rapport_events.db import SessionFactory, transaction
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.types import CustomerRegistered
from rapport_profile.customers import service as customer_service
from rapport_profile.customers.models import Customer, CustomerCreate
from rapport_profile.errors import CustomerNotFound, DuplicateEmail
from rapport_profile.unit_of_work import SqlProfileUnitOfWork

TOPIC = "rapport.test-profile-service"


def new_customer(**overrides: object) -> CustomerCreate:
    values: dict[str, object] = {
        "email": "Ada@Example.com",
        "phone": "+14155550100",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "gb",
    }
    values.update(overrides)
    return CustomerCreate.model_validate(values)


async def stored(sessions: SessionFactory) -> tuple[list[Customer], list[OutboxMessage]]:
    async with sessions() as session:
        customers = list((await session.exec(select(Customer))).all())
        messages = list((await session.exec(select(OutboxMessage).where(is_event()))).all())
    return customers, messages


class TestRegisterCustomer:
    async def test_writes_the_customer_and_its_event_together(
        self, sessions: SessionFactory
    ) -> None:
        async with transaction(sessions) as session:
            customer = await customer_service.register_customer(
                SqlProfileUnitOfWork(session, TOPIC), new_customer()
            )

        [row], [message] = await stored(sessions)
        assert row.id == customer.id
        assert row.email == "ada@example.com"
        assert row.country == "GB"
        assert message.topic == TOPIC
        assert message.key == customer.id
        envelope = decode(message.value, [(k, v.encode()) for k, v in message.headers])
        assert envelope.source == "/services/profile"
        assert isinstance(envelope.data, CustomerRegistered)
        assert envelope.data.customer_id == customer.id
        assert envelope.data.email == "ada@example.com"
        assert envelope.data.phone == "+14155550100"

    async def test_a_second_customer_with_the_same_email_is_refused(
        self, sessions: SessionFactory
    ) -> None:
        async with transaction(sessions) as session:
            first = await customer_service.register_customer(
                SqlProfileUnitOfWork(session, TOPIC), new_customer()
            )

        with pytest.raises(DuplicateEmail) as refused:
            async with transaction(sessions) as session:
                await customer_service.register_customer(
                    SqlProfileUnitOfWork(session, TOPIC), new_customer(email="ADA@example.com")
                )

        assert refused.value.existing_id == first.id
        customers, messages = await stored(sessions)
        assert len(customers) == 1
        assert len(messages) == 1

    async def test_an_unknown_id_is_not_found(self, sessions: SessionFactory) -> None:
        async with transaction(sessions) as session:
            with pytest.raises(CustomerNotFound):
                await customer_service.get_customer(session, "nobody")
