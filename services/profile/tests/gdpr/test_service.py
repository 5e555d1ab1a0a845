"""Erasure in profile: nothing personal remains, late events and calls are dropped, and the
outbox forgets what it holds about the erased customer."""

from profile_testing import DAY, TOPIC, consent, deliver, message, order, published, register
from sqlalchemy import update

from rapport_events.db import SessionFactory, transaction
from rapport_events.outbox import OutboxMessage
from rapport_events.types import (
    CustomerErased,
    TicketOpened,
)
from rapport_profile.customers.store import SqlCustomerStore
from rapport_profile.gdpr import service as gdpr_service
from rapport_profile.identity import service as identity_service
from rapport_profile.shared import publish
from rapport_profile.tracking import service as tracking_service
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


class TestErasureHere:
    async def test_nothing_personal_remains_and_late_events_are_dropped(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "ada2@example.com")
        await consent(sessions, ada, purpose="analytics", granted=True)
        await deliver(sessions, order(ada, "o-1", "10", DAY))
        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor=None, topic=TOPIC
            )

        async with transaction(sessions) as session:
            erased = await gdpr_service.forget(
                SqlProfileUnitOfWork(session, TOPIC), ada, ["profile"]
            )
        await deliver(sessions, order(ada, "o-2", "10", DAY))
        await deliver(sessions, TicketOpened(customer_id=dupe, ticket_id="t", subject="late"))
        await deliver(sessions, CustomerErased(customer_id=ada))
        late = [
            message(type="track", userId=ada, event="Late", messageId="late-1"),
            message(
                type="identify", userId=dupe, traits={"email": "x@example.com"}, messageId="l-2"
            ),
        ]
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), late)

        async with sessions() as session:
            mine = await gdpr_service.local_records(SqlProfileUnitOfWork(session), ada)
            theirs = await gdpr_service.local_records(SqlProfileUnitOfWork(session), dupe)
            assert await SqlCustomerStore(session).find_by_email("ada2@example.com") is None
        assert set(erased) == {ada, dupe}
        assert gdpr_service.holds_nothing(mine) and gdpr_service.holds_nothing(theirs)
        assert not [
            e
            for e in await published(sessions)
            if e.data.customer_id in (ada, dupe)
            and e.type != "rapport.customer.erased.v1"
            and e.data.occurred_at > DAY
            and e.type.startswith("rapport.interaction")
        ]

    async def test_the_outbox_forgets_what_went_out_and_sends_the_rest_first(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        async with transaction(sessions) as session:
            await session.exec(update(OutboxMessage).values(sent_at=DAY))  # the relay sent it
        await consent(sessions, ada, purpose="analytics", granted=True)  # not sent yet
        grace = await register(sessions, "grace@example.com")

        async with transaction(sessions) as session:
            await gdpr_service.forget(SqlProfileUnitOfWork(session, TOPIC), ada, ["profile"])
            erased = publish(session, CustomerErased(customer_id=ada), TOPIC)
        after_erasure = [(e.type, e.data.customer_id) for e in await published(sessions)]
        await deliver(sessions, CustomerErased(customer_id=ada), erased.id)
        after_delivery = [(e.type, e.data.customer_id) for e in await published(sessions)]

        assert after_erasure == [
            ("rapport.consent.granted.v1", ada),
            ("rapport.customer.registered.v2", grace),
            ("rapport.customer.erased.v1", ada),
        ]
        assert after_delivery == [("rapport.customer.registered.v2", grace)]

    async def test_a_parked_row_about_the_erased_customer_goes_rather_than_waits_to_be_unparked(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        async with transaction(sessions) as session:  # the broker refused it for good
            await session.exec(update(OutboxMessage).values(parked_at=DAY, park_reason="too big"))
        grace = await register(sessions, "grace@example.com")

        async with transaction(sessions) as session:
            await gdpr_service.forget(SqlProfileUnitOfWork(session, TOPIC), ada, ["profile"])

        assert [(e.type, e.data.customer_id) for e in await published(sessions)] == [
            ("rapport.customer.registered.v2", grace)
        ]
        assert await gdpr_service.outbox_clear(sessions, [ada])
