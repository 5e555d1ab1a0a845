"""Merges and unmerges on a real database: the history, metrics, identities and consents
that follow a customer, and the merges refused."""

from datetime import timedelta
from decimal import Decimal

import pytest
from profile_testing import DAY, TOPIC, VALUE_CHANGED, consent, deliver, order, published, register

from rapport_events.db import SessionFactory, transaction
from rapport_profile.analytics import service as analytics_service
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.errors import Conflict, InvalidRequest
from rapport_profile.identity import service as identity_service
from rapport_profile.timeline import service as timeline_service
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


class TestMerge:
    async def test_history_metrics_and_identities_move_to_the_survivor(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "ada.l@example.com")
        await deliver(sessions, order(dupe, "o-1", "30", DAY), "e-1")
        await deliver(sessions, order(ada, "o-2", "20", DAY), "e-2")

        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor="rep", topic=TOPIC
            )
        await deliver(sessions, order(dupe, "o-3", "50", DAY + timedelta(days=1)), "e-3")

        async with sessions() as session:
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), ada, types=[], limit=10, cursor=None
            )
            metrics = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), ada)
            merged = await customer_service.get_customer(session, dupe)
        assert {item.id for item in page.items} == {"e-1", "e-2", "e-3"}
        assert (metrics.orders, metrics.revenue) == (3, Decimal("100.00"))
        assert (merged.status, merged.merged_into) == ("merged", ada)
        events = await published(sessions)
        event = next(e for e in reversed(events) if e.type != VALUE_CHANGED)
        assert event.type == "rapport.customer.merged.v1"
        assert events[-1].type == VALUE_CHANGED and events[-1].data.orders == 3  # type: ignore[attr-defined]
        assert (event.data.customer_id, event.data.merged_customer_id) == (ada, dupe)  # type: ignore[attr-defined]

    async def test_consents_resolve_to_the_most_restrictive(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "ada.l@example.com")
        await consent(sessions, ada, purpose="marketing", channel="email", granted=True)
        await consent(sessions, dupe, purpose="marketing", channel="email", granted=False)
        await consent(
            sessions,
            ada,
            purpose="partner_sharing",
            partner_id="p",
            slices=["contact", "loyalty"],
            granted=True,
        )
        await consent(
            sessions,
            dupe,
            purpose="partner_sharing",
            partner_id="p",
            slices=["contact"],
            granted=True,
        )
        await consent(sessions, ada, purpose="analytics", granted=True)  # dupe never chose
        await consent(sessions, dupe, purpose="marketing", channel="sms", granted=True)

        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor=None, topic=TOPIC
            )
        async with sessions() as session:
            receipt = await consent_service.receipt(SqlProfileUnitOfWork(session), ada)

        state = {
            (c.purpose, c.channel, c.partner_id): (c.granted, c.slices) for c in receipt.consents
        }
        assert state == {
            ("marketing", "email", None): (False, []),
            ("partner_sharing", None, "p"): (True, ["contact"]),
            ("analytics", None, None): (True, []),
            ("marketing", "sms", None): (True, []),
        }
        assert receipt.history[-1].source == "merge"
        versions = [
            e.data.version
            for e in await published(sessions)
            if e.type.startswith("rapport.consent") and e.data.customer_id == ada
        ]  # type: ignore[attr-defined]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)

    async def test_a_merge_can_be_undone(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "grace@example.com")
        await consent(sessions, dupe, purpose="analytics", granted=True)
        await deliver(sessions, order(dupe, "o-1", "30", DAY), "e-1")
        await deliver(sessions, order(ada, "o-2", "20", DAY), "e-2")
        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor=None, topic=TOPIC
            )
        await deliver(sessions, order(dupe, "o-3", "5", DAY), "e-3")

        async with transaction(sessions) as session:
            await identity_service.unmerge_customers(session, ada, dupe, actor="rep", topic=TOPIC)

        async with sessions() as session:
            theirs = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), dupe, types=[], limit=10, cursor=None
            )
            mine = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), ada, types=[], limit=10, cursor=None
            )
            restored = await customer_service.get_customer(session, dupe)
            their_metrics = await analytics_service.metrics_of(SqlProfileUnitOfWork(session), dupe)
            their_consents = await consent_service.receipt(SqlProfileUnitOfWork(session), dupe)
            my_consents = await consent_service.receipt(SqlProfileUnitOfWork(session), ada)
        assert {i.id for i in theirs.items} == {"e-1", "e-3"}
        assert {i.id for i in mine.items} == {"e-2"}
        assert (restored.status, restored.merged_into) == ("active", None)
        assert their_metrics.orders == 2
        assert [(c.purpose, c.granted) for c in their_consents.consents] == [("analytics", True)]
        # The grant the merge carried over to the survivor goes back with the duplicate.
        assert my_consents.consents == []
        assert [(h.source, h.granted) for h in my_consents.history] == [
            ("merge", True),
            ("unmerge", False),
        ]

    async def test_an_unmerge_keeps_consents_withdrawn_since_the_merge(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "grace@example.com")
        for who in (ada, dupe):
            await consent(sessions, who, purpose="marketing", channel="email", granted=True)
        await consent(sessions, ada, purpose="analytics", granted=True)
        await consent(sessions, dupe, purpose="analytics", granted=False)  # the merge revokes it
        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor=None, topic=TOPIC
            )
        await consent(sessions, ada, purpose="marketing", channel="email", granted=False)

        async with transaction(sessions) as session:
            await identity_service.unmerge_customers(session, ada, dupe, actor="rep", topic=TOPIC)

        async with sessions() as session:
            mine = await consent_service.receipt(SqlProfileUnitOfWork(session), ada)
            theirs = await consent_service.receipt(SqlProfileUnitOfWork(session), dupe)
        assert {(c.purpose, c.granted) for c in mine.consents} == {
            ("marketing", False),
            ("analytics", True),
        }
        assert {(c.purpose, c.granted) for c in theirs.consents} == {
            ("marketing", False),
            ("analytics", False),
        }
        assert [h.source for h in mine.history][-3:] == ["merge", "api", "unmerge"]

    async def test_merging_into_itself_or_twice_is_refused(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        dupe = await register(sessions, "grace@example.com")
        with pytest.raises(InvalidRequest):
            async with transaction(sessions) as session:
                await identity_service.merge_customers(
                    session, ada, ada, reason="manual", actor=None, topic=TOPIC
                )
        async with transaction(sessions) as session:
            await identity_service.merge_customers(
                session, ada, dupe, reason="manual", actor=None, topic=TOPIC
            )
        with pytest.raises(Conflict):
            async with transaction(sessions) as session:
                await identity_service.merge_customers(
                    session, ada, dupe, reason="manual", actor=None, topic=TOPIC
                )
