"""Identity resolution, the timeline, metrics and analytics on a real database."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlmodel import select

from rapport_events import value
from rapport_events.base import utcnow
from rapport_events.codec import Envelope, decode
from rapport_events.consumer import is_batch
from rapport_events.db import SessionFactory, create_engine, session_factory, transaction
from rapport_events.migrations import upgrade
from rapport_events.outbox import OutboxMessage, is_event
from rapport_events.settings import KafkaSettings
from rapport_events.types import (
    CustomerErased,
    InteractionTracked,
    LineItem,
    OrderCompleted,
    PartnerDataDisclosed,
    SocialReplySent,
    TicketOpened,
)
from rapport_profile.analytics import projection as analytics_projection
from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics import store as analytics_store
from rapport_profile.analytics.forecasts import FitWorker, Forecaster, Key
from rapport_profile.analytics.service import NotEnoughHistory
from rapport_profile.consents import service as consent_service
from rapport_profile.consents.models import ConsentUpdate
from rapport_profile.customers import service as customer_service
from rapport_profile.customers import store as customer_store
from rapport_profile.customers.models import Customer, CustomerCreate
from rapport_profile.errors import Conflict, InvalidRequest
from rapport_profile.gdpr import service as gdpr_service
from rapport_profile.handlers import HANDLERS
from rapport_profile.identity import service as identity_service
from rapport_profile.identity.models import Identity
from rapport_profile.main import MIGRATIONS
from rapport_profile.settings import Settings
from rapport_profile.shared import publish
from rapport_profile.timeline import service as timeline_service
from rapport_profile.tracking import identify as tracking_identify
from rapport_profile.tracking import service as tracking_service
from rapport_profile.tracking.models import TrackedMessage
from rapport_profile.tracking.parsing import ANONYMOUS, USER, BadTrackingCall, Message

TOPIC = "rapport.test-profile-domain"
VALUE_CHANGED = "rapport.customer.value.changed.v1"
SETTINGS = Settings(environment="development", kafka=KafkaSettings(topic=TOPIC))
DAY = datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
    yield session_factory(engine)
    await engine.dispose()


async def register(sessions: SessionFactory, email: str, **fields: Any) -> str:
    values = {"email": email, "first_name": "F", "last_name": "L", **fields}
    async with transaction(sessions) as session:
        customer = await customer_service.register_customer(
            session, CustomerCreate.model_validate(values), topic=TOPIC
        )
    return customer.id


async def deliver(sessions: SessionFactory, event: Any, event_id: str | None = None) -> None:
    """Apply an event as the consumer does: every handler of its type, in one transaction."""
    envelope = Envelope(
        data=event, source="/services/test", **({"id": event_id} if event_id else {})
    )
    async with transaction(sessions) as session:
        for handler in HANDLERS[type(event)]:
            wanted = handler.__code__.co_varnames[: handler.__code__.co_argcount]
            available = {"event": event, "envelope": envelope, "session": session}
            if is_batch(handler):  # a run of one
                available = {"events": [event], "envelopes": [envelope], "session": session}
            available["settings"] = SETTINGS
            await handler(**{name: available[name] for name in wanted})


def order(
    customer_id: str, order_id: str, revenue: str, at: datetime, cost: str | None = None
) -> OrderCompleted:
    return OrderCompleted(
        customer_id=customer_id,
        occurred_at=at,
        order_id=order_id,
        items=(LineItem(product_id="sku-1", price=Decimal(revenue)),),
        revenue=Decimal(revenue),
        cost=Decimal(cost) if cost else None,
    )


async def published(sessions: SessionFactory) -> list[Envelope]:
    async with sessions() as session:
        rows = (
            await session.exec(select(OutboxMessage).where(is_event()).order_by(OutboxMessage.id))
        ).all()  # type: ignore[arg-type]
    return [decode(m.value, [(k, v.encode()) for k, v in m.headers]) for m in rows]


async def consent(sessions: SessionFactory, customer_id: str, **body: Any) -> None:
    async with transaction(sessions) as session:
        await consent_service.set_consent(
            session, customer_id, ConsentUpdate.model_validate(body), topic=TOPIC
        )


class TestTimeline:
    async def test_any_event_lands_once_newest_first(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        ticket = TicketOpened(customer_id=ada, occurred_at=DAY, ticket_id="t-1", subject="Broken")
        await deliver(sessions, ticket, "e-1")
        await deliver(sessions, ticket, "e-1")
        await deliver(sessions, order(ada, "o-1", "10", DAY + timedelta(hours=1)), "e-2")

        async with sessions() as session:
            page = await timeline_service.page(session, ada, types=[], limit=10, cursor=None)
            tickets = await timeline_service.page(
                session, ada, types=["ticket.opened"], limit=10, cursor=None
            )

        assert [item.id for item in page.items] == ["e-2", "e-1"]
        assert page.items[1].data["subject"] == "Broken"
        assert [item.type for item in tickets.items] == ["rapport.ticket.opened.v2"]

    async def test_pages_follow_the_cursor_without_gaps(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        for n in range(5):
            event = InteractionTracked(
                customer_id=ada, occurred_at=DAY + timedelta(minutes=n), kind="page"
            )
            await deliver(sessions, event, f"e-{n}")

        seen, cursor = [], None
        async with sessions() as session:
            while True:
                page = await timeline_service.page(session, ada, types=[], limit=2, cursor=cursor)
                seen += [item.id for item in page.items]
                if (cursor := page.next_cursor) is None:
                    break
        assert seen == ["e-4", "e-3", "e-2", "e-1", "e-0"]

    async def test_disclosures_come_from_partner_events(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        disclosed = PartnerDataDisclosed(
            customer_id=ada,
            partner_id="p-1",
            partner_name="Acme",
            partner_ref="ref-9",
            slices=("contact",),
            fields=("email",),
            consent_version=2,
        )
        await deliver(sessions, disclosed, "d-1")
        await deliver(sessions, disclosed, "d-1")

        async with sessions() as session:
            rows = await timeline_service.disclosures(session, ada)
        assert [(d.partner_name, d.slices, d.consent_version) for d in rows] == [
            ("Acme", ["contact"], 2)
        ]


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
            page = await timeline_service.page(session, ada, types=[], limit=10, cursor=None)
            metrics = await analytics_service.customer_metrics(session, ada)
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
            receipt = await consent_service.consent_receipt(session, ada)

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
            theirs = await timeline_service.page(session, dupe, types=[], limit=10, cursor=None)
            mine = await timeline_service.page(session, ada, types=[], limit=10, cursor=None)
            restored = await customer_service.get_customer(session, dupe)
            their_metrics = await analytics_service.customer_metrics(session, dupe)
            their_consents = await consent_service.consent_receipt(session, dupe)
            my_consents = await consent_service.consent_receipt(session, ada)
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
            mine = await consent_service.consent_receipt(session, ada)
            theirs = await consent_service.consent_receipt(session, dupe)
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


def message(**fields: Any) -> Message:
    return Message.model_validate(fields)


class TestIdentityResolution:
    async def test_identify_links_anonymous_activity_to_a_new_customer(
        self, sessions: SessionFactory
    ) -> None:
        visit = message(
            type="page",
            anonymousId="a-1",
            messageId="m-1",
            name="Home",
            context={"campaign": {"source": "newsletter", "medium": "email"}},
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, [visit], topic=TOPIC)
        anonymous = tracking_identify.pseudo_id(ANONYMOUS, "a-1")
        for envelope in await published(sessions):
            await deliver(sessions, envelope.data, envelope.id)

        who = message(
            type="identify",
            anonymousId="a-1",
            userId="u-1",
            messageId="m-2",
            traits={
                "email": "Ada@Example.com",
                "firstName": "Ada",
                "lastName": "L",
                "gender": "g" * 40,
                "address": {"city": "Bath", "country": "gb"},
            },
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, [who], topic=TOPIC)
        events = await published(sessions)
        registered = next(e for e in events if e.type == "rapport.customer.registered.v2")
        ada = registered.data.customer_id
        merged = next(e for e in events if e.type == "rapport.customer.merged.v1")

        assert registered.data.email == "ada@example.com"  # type: ignore[attr-defined]
        assert registered.data.acquisition_channel == "email"  # type: ignore[attr-defined]
        assert registered.data.gender is None  # too long for the field: ignored, not an error
        assert (registered.data.city, registered.data.country) == ("Bath", "GB")  # type: ignore[attr-defined]
        assert (merged.data.customer_id, merged.data.merged_customer_id) == (ada, anonymous)  # type: ignore[attr-defined]
        async with sessions() as session:
            page = await timeline_service.page(
                session, ada, types=["interaction.tracked"], limit=5, cursor=None
            )
            assert await identity_service.resolve(session, anonymous) == ada
        assert [item.data["kind"] for item in page.items] == ["page"]

    async def test_identify_with_a_known_email_folds_into_that_customer(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        calls = [
            message(type="track", anonymousId="a-9", event="Product Viewed", messageId="m-1"),
            message(
                type="identify",
                anonymousId="a-9",
                traits={"email": "ada@example.com"},
                messageId="m-2",
            ),
            message(type="track", anonymousId="a-9", event="Product Viewed", messageId="m-3"),
        ]
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, calls, topic=TOPIC)

        events = await published(sessions)
        tracked = [e for e in events if e.type == "rapport.interaction.tracked.v1"]
        merged = [e for e in events if e.type == "rapport.customer.merged.v1"]
        assert tracked[-1].data.customer_id == ada
        assert [(e.data.customer_id, e.data.reason) for e in merged] == [(ada, "email")]  # type: ignore[attr-defined]

    async def test_a_shared_external_id_merges_the_newer_customer_into_the_older(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com", external_ids={"pos": "P-1"})
        grace = await register(sessions, "grace@example.com")
        call = message(
            type="identify", userId=grace, traits={"externalIds": {"pos": "P-1"}}, messageId="m-1"
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, [call], topic=TOPIC)

        async with sessions() as session:
            merged = await customer_service.get_customer(session, grace)
        assert (merged.status, merged.merged_into) == ("merged", ada)

    async def test_identify_with_a_known_external_id_folds_into_its_holder(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com", external_ids={"pos": "P-1"})
        calls = [
            message(type="track", userId="u-5", event="Product Viewed", messageId="m-1"),
            message(
                type="identify",
                userId="u-5",
                traits={"externalIds": {"pos": "P-1"}, "email": "ada.pos@example.com"},
                messageId="m-2",
            ),
        ]
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, calls, topic=TOPIC)

        async with sessions() as session:
            everyone = await customer_store.all_customers(session)
            owner = await identity_service.resolve(
                session, tracking_identify.pseudo_id(USER, "u-5")
            )
        merged = [e for e in await published(sessions) if e.type == "rapport.customer.merged.v1"]
        assert [c.id for c in everyone] == [ada]
        assert owner == ada
        assert [(e.data.customer_id, e.data.reason) for e in merged] == [(ada, "external_id")]  # type: ignore[attr-defined]

    async def test_a_repeated_message_id_is_applied_once(self, sessions: SessionFactory) -> None:
        call = message(type="track", anonymousId="a-1", event="Clicked", messageId="same")
        async with transaction(sessions) as session:
            first = await tracking_service.ingest(session, [call, call], topic=TOPIC)
        async with transaction(sessions) as session:
            second = await tracking_service.ingest(session, [call], topic=TOPIC)
        assert (first, second) == (1, 0)
        assert len(await published(sessions)) == 1


class TestBatches:
    """A batch is resolved in bulk; it must end exactly where its calls one by one end."""

    async def test_a_mixed_batch_ends_as_its_calls_one_by_one(
        self, sessions: SessionFactory
    ) -> None:
        people = {
            run: [await register(sessions, f"{run}{who}@x.io") for who in ("ada", "bob")]
            for run in ("b-", "s-")
        }
        start = len(await published(sessions))

        async with transaction(sessions) as session:
            together = await tracking_service.ingest(
                session, mixed_calls("b-", *people["b-"]), topic=TOPIC
            )
        singly = 0
        for call in mixed_calls("s-", *people["s-"]):
            async with transaction(sessions) as session:
                singly += await tracking_service.ingest(session, [call], topic=TOPIC)
        events = (await published(sessions))[start:]
        for envelope in events:
            await deliver(sessions, envelope.data, envelope.id)
        batch, one_by_one = [
            await outcome(sessions, run, events, *people[run]) for run in ("b-", "s-")
        ]

        assert (together, singly) == (23, 23)  # 24 calls, one messageId twice
        assert batch == one_by_one
        timelines, customers = batch["timelines"], batch["customers"]
        assert customers["ada"] == ("active", "cpc")  # set by the first call with a campaign
        assert customers["grace"] == ("active", "email")  # the visit before identify
        assert ("track", "After Identify") in timelines["grace"]  # a-1 was folded into grace
        assert ("track", "After Alias") in timelines["grace"]  # a-2 was aliased to grace
        assert ("track", "After Login") in timelines["ada"]  # a-7 was folded into ada
        assert ("track", "Same Visitor") in timelines["user:u-4"]  # a-5 joined user u-4
        assert timelines["bob"].count(("track", "Clicked")) == 1
        assert ("track", "Shared") in timelines["bob"]
        assert timelines["ada"].count(("track", "Shared")) == 3  # a-6 now follows ada
        assert ("track", "After Merge") in timelines["ada"]  # bob's id now means ada
        assert customers["bob"][0] == "merged"

    async def test_calls_about_erased_customers_are_dropped_inside_a_batch(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        bob = await register(sessions, "bob@example.com")
        visit = message(type="page", anonymousId="a-7", name="Home", messageId="m-0")
        async with transaction(sessions) as session:
            await tracking_service.ingest(session, [visit], topic=TOPIC)
        for erased in (ada, tracking_identify.pseudo_id(ANONYMOUS, "a-7")):
            async with transaction(sessions) as session:
                await gdpr_service.forget(session, erased, ["profile"])
        start = len(await published(sessions))
        batch = [
            message(type="track", userId=ada, event="Late", messageId="m-1"),
            message(type="track", userId=bob, event="Clicked", messageId="m-2"),
            message(type="page", anonymousId="a-7", name="Late", messageId="m-3"),
            message(type="track", userId=ada, anonymousId="a-8", event="Late", messageId="m-4"),
            message(type="track", userId=bob, event="Clicked again", messageId="m-5"),
        ]

        async with transaction(sessions) as session:
            applied = await tracking_service.ingest(session, batch, topic=TOPIC)

        events = (await published(sessions))[start:]
        async with sessions() as session:
            identities = (await session.exec(select(Identity))).all()
            tracked = set((await session.exec(select(TrackedMessage.message_id))).all())
        assert applied == 2
        assert [(e.data.customer_id, e.data.name) for e in events] == [  # type: ignore[attr-defined]
            (bob, "Clicked"),
            (bob, "Clicked again"),
        ]
        assert identities == []  # a-8 was not linked to the erased customer
        assert {"m-2", "m-5"} <= tracked and not {"m-1", "m-3", "m-4"} & tracked

    async def test_a_message_id_repeated_inside_a_batch_is_applied_once(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        bob = await register(sessions, "bob@example.com")
        start = len(await published(sessions))
        first = [
            message(type="track", userId=bob, event="First", messageId="m-1"),
            message(type="track", userId=ada, event="Other", messageId="m-2"),
            message(type="track", userId=bob, event="Second", messageId="m-1"),
            message(type="identify", userId=ada, traits={"firstName": "A"}, messageId="m-2"),
            message(type="page", userId=ada, name="Home", messageId="m-3"),
        ]
        second = [
            message(type="track", userId=bob, event="Third", messageId="m-1"),
            message(type="track", userId=bob, event="Fourth", messageId="m-4"),
        ]

        async with transaction(sessions) as session:
            applied = [await tracking_service.ingest(session, first, topic=TOPIC)]
        async with transaction(sessions) as session:
            applied.append(await tracking_service.ingest(session, second, topic=TOPIC))

        events = (await published(sessions))[start:]
        assert applied == [3, 1]
        assert [(e.data.customer_id, e.data.name) for e in events] == [  # type: ignore[attr-defined]
            (bob, "First"),
            (ada, "Other"),
            (ada, "Home"),
            (bob, "Fourth"),
        ]

    async def test_the_statements_of_a_batch_do_not_grow_with_its_calls(
        self, sessions: SessionFactory
    ) -> None:
        people = [await register(sessions, f"p{n}@example.com") for n in range(10)]

        async def statements(count: int, first: int) -> int:
            batch = [
                message(type="track", userId=people[n % 10], event="Clicked", messageId=f"m-{n}")
                for n in range(first, first + count)
            ]
            with executed(sessions) as sql:
                async with transaction(sessions) as session:
                    assert await tracking_service.ingest(session, batch, topic=TOPIC) == count
            return len(sql)

        assert await statements(10, 0) == await statements(100, 100)

    async def test_the_timeline_takes_one_lookup_and_one_insert_per_event(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        tracked = InteractionTracked(customer_id=ada, kind="page", name="Home")

        with executed(sessions) as sql:
            await deliver(sessions, tracked, "e-1")
        await deliver(sessions, tracked, "e-1")

        async with sessions() as session:
            page = await timeline_service.page(session, ada, types=[], limit=10, cursor=None)
        assert [s.split()[0] for s in sql if not s.startswith("BEGIN")] == ["SELECT", "INSERT"]
        assert [item.id for item in page.items].count("e-1") == 1


def mixed_calls(run: str, ada: str, bob: str) -> list[Message]:
    """Identify, alias and track calls about several people, some found to be one.

    `run` prefixes every id and e-mail, so two runs can share a database.
    """
    email, cpc, social = ({"campaign": {"medium": m}} for m in ("email", "cpc", "social"))

    def call(n: int, kind: str, **fields: Any) -> Message:
        return message(type=kind, messageId=f"{run}{n}", **fields)

    a1, a2, a5, a6, a7 = (f"{run}a-{n}" for n in (1, 2, 5, 6, 7))
    u3, u4 = f"{run}u-3", f"{run}u-4"
    return [
        call(1, "page", anonymousId=a1, name="Home", context=email),
        call(2, "track", userId=ada, event="Viewed", context=cpc),
        call(3, "track", userId=ada, event="Viewed", context=social),
        call(4, "track", userId=bob, event="Clicked"),
        call(5, "track", anonymousId=a2, event="Clicked"),
        call(6, "track", anonymousId=a1, event="Clicked"),
        call(7, "identify", anonymousId=a1, userId=u3, traits={"email": f"{run}grace@x.io"}),
        call(8, "track", anonymousId=a1, event="After Identify"),
        call(9, "track", userId=u3, event="By User Id"),
        call(10, "alias", previousId=a2, userId=u3),
        call(11, "track", anonymousId=a2, event="After Alias"),
        message(type="track", userId=bob, event="Clicked", messageId=f"{run}4"),
        call(12, "page", userId=u4, name="Unknown"),
        call(13, "track", userId=u4, anonymousId=a5, event="Linked"),
        call(14, "track", anonymousId=a5, event="Same Visitor"),
        call(15, "track", userId=bob, anonymousId=a6, event="Shared"),
        call(16, "track", userId=ada, anonymousId=a6, event="Shared"),
        call(17, "track", anonymousId=a6, event="Shared"),
        call(18, "page", anonymousId=a7, name="Before Login"),
        call(19, "track", userId=ada, anonymousId=a7, event="Logged In"),
        call(20, "track", anonymousId=a7, event="After Login"),
        call(21, "track", userId=bob, event="Before Merge"),
        call(22, "identify", userId=ada, traits={"email": f"{run}bob@x.io"}),  # bob is ada
        call(23, "track", userId=bob, event="After Merge"),
    ]


async def outcome(
    sessions: SessionFactory, run: str, events: list[Envelope], ada: str, bob: str
) -> dict[str, Any]:
    """What one run of `mixed_calls` left, in names that do not depend on the run."""
    async with sessions() as session:
        grace = await customer_store.find_by_email(session, f"{run}grace@x.io")
        assert grace is not None
        names = {ada: "ada", bob: "bob", grace.id: "grace"}

        def name(value: str | None) -> str:
            prefix, colon, rest = (value or "").rpartition(":")
            return names.get(value or "", prefix + colon + rest.removeprefix(run))

        def ours(value: str | None) -> bool:
            return value in names or (value or "").rpartition(":")[2].startswith(run)

        published_by: dict[str, list[tuple[Any, ...]]] = {}
        for envelope in events:
            data = envelope.data
            if ours(getattr(data, "message_id", None)) or (
                ours(data.customer_id) and envelope.type != InteractionTracked.TYPE
            ):
                published_by.setdefault(name(data.customer_id), []).append(
                    (
                        envelope.type,
                        getattr(data, "kind", None),
                        getattr(data, "name", None),
                        name(getattr(data, "merged_customer_id", None)),
                        getattr(data, "changes", None),
                    )
                )
        owners = ["ada", "bob", "grace", f"user:{run}u-4"]
        ids = {v: k for k, v in names.items()} | {f"user:{run}u-4": f"user:{run}u-4"}
        timelines = {}
        for owner in owners:
            page = await timeline_service.page(
                session, ids[owner], types=["interaction.tracked"], limit=100, cursor=None
            )
            timelines[name(owner)] = sorted(
                (item.data["kind"], item.data["name"])
                for item in page.items
                if ours(item.data.get("message_id"))
            )
        identities = {
            (i.kind, name(i.value), name(i.customer_id), i.acquisition_channel)
            for i in (await session.exec(select(Identity))).all()
            if ours(i.value) or ours(i.customer_id)
        }
        customers = {
            name(c.id): (c.status, c.acquisition_channel)
            for c in (await session.exec(select(Customer))).all()
            if c.id in names
        }
    return {
        "published": published_by,
        "timelines": timelines,
        "identities": identities,
        "customers": customers,
    }


@contextmanager
def executed(sessions: SessionFactory) -> Iterator[list[str]]:
    """The SQL statements sent on the sessions' engine inside the block."""
    engine = sessions.kw["bind"].sync_engine
    sql: list[str] = []

    def note(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sql.append(statement.strip())

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sql
    finally:
        event.remove(engine, "before_cursor_execute", note)


class TestSegmentNames:
    def test_ecommerce_survey_and_loyalty_events_map_to_domain_events(self) -> None:
        def one(event: str, **properties: Any) -> Any:
            [mapped] = tracking_service.events_for(
                message(type="track", userId="u", event=event, properties=properties), "c-1", DAY
            )
            return mapped

        completed = one(
            "Order Completed",
            order_id="o-1",
            revenue=25,
            tax=2,
            shipping=3,
            currency="usd",
            products=[{"product_id": "p", "price": 12.5, "quantity": 2}],
        )
        added = one("Product Added", cart_id="c", product_id="p", price=5, quantity=3)
        survey = one("Survey Completed", survey_id="s", nps_score=9, answers={"q": "a"})
        points = one("Loyalty Points Earned", points=50, program="club")
        search = one("Products Searched", query="espresso")
        other = one("Video Played")

        assert (completed.TYPE, completed.revenue, completed.currency) == (
            "rapport.order.completed.v1",
            Decimal("25.00"),
            "USD",
        )
        assert completed.items[0].quantity == 2
        assert (added.TYPE, added.action, added.value) == (
            "rapport.cart.updated.v1",
            "product_added",
            Decimal("15.00"),
        )
        assert (one("Checkout Started").action, one("Cart Viewed").action) == (
            "checkout_started",
            "cart_viewed",
        )
        assert (survey.TYPE, survey.nps_score) == ("rapport.survey.completed.v1", 9)
        assert (points.TYPE, points.points) == ("rapport.loyalty.points.earned.v1", 50)
        assert (search.kind, search.search_query) == ("search", "espresso")
        assert (other.kind, other.name) == ("track", "Video Played")

    def test_a_sku_is_kept_next_to_the_product_id(self) -> None:
        [completed] = tracking_service.events_for(
            message(
                type="track",
                userId="u",
                event="Order Completed",
                properties={
                    "order_id": "o-1",
                    "products": [
                        {"product_id": "p-42", "sku": "BX2-BLK", "price": 10},
                        {"sku": "ONLY-SKU", "price": 5},
                    ],
                },
            ),
            "c-1",
            DAY,
        )
        assert [(i.product_id, i.sku) for i in completed.items] == [  # type: ignore[attr-defined]
            ("p-42", "BX2-BLK"),
            ("ONLY-SKU", "ONLY-SKU"),
        ]

    def test_an_order_or_cart_without_a_currency_is_in_the_shops_currency(self) -> None:
        def mapped(event: str, **properties: Any) -> Any:
            call = message(type="track", userId="u", event=event, properties=properties)
            [one] = tracking_service.events_for(call, "c-1", DAY, currency="GBP")
            return one

        assert mapped("Order Completed", order_id="o-1", revenue=10).currency == "GBP"
        assert mapped("Product Added", product_id="p", price=5).currency == "GBP"
        assert mapped("Order Completed", order_id="o-2", revenue=10, currency="usd").currency == (
            "USD"
        )

    def test_the_default_currency_setting_is_an_iso_code(self) -> None:
        assert Settings(environment="development").default_currency == "EUR"
        assert Settings(environment="development", default_currency="GBP").default_currency == (
            "GBP"
        )
        with pytest.raises(ValueError, match="default_currency"):
            Settings(environment="development", default_currency="pounds")

    def test_a_negative_revenue_is_refused(self) -> None:
        with pytest.raises(BadTrackingCall):
            tracking_service.events_for(
                message(
                    type="track", userId="u", event="Order Completed", properties={"revenue": -1}
                ),
                "c-1",
                DAY,
            )


class TestMetrics:
    async def test_rfm_scores_lifetime_value_and_tiers_follow_the_one_value_method(
        self, sessions: SessionFactory
    ) -> None:
        ids = [await register(sessions, f"c{n}@example.com") for n in range(5)]
        for n, customer in enumerate(ids):
            for k in range(n + 1):  # customer n: n+1 orders of 10*(n+1), all on one day
                await deliver(
                    sessions,
                    order(customer, f"o-{n}-{k}", str(10 * (n + 1)), DAY + timedelta(days=n)),
                )

        async with sessions() as session:
            best = await analytics_service.customer_metrics(session, ids[4])
            worst = await analytics_service.customer_metrics(session, ids[0])
            tiers = await analytics_service.tiers(session)
            gold, _ = await customer_service.search_customers(session, tier="gold")

        assert (best.orders, best.revenue, best.average_order_value) == (
            5,
            Decimal("250.00"),
            Decimal("50.00"),
        )
        # Frequency by orders (5: 4), monetary by revenue (250: 2), recency by the days since
        # the last order; fixed cut-offs, whatever the other customers do.
        assert (best.rfm.frequency, best.rfm.monetary) == (4, 2)
        assert (worst.rfm.frequency, worst.rfm.monetary) == (1, 1)
        assert best.rfm.recency == value.recency_score(DAY + timedelta(days=4), utcnow())
        # 250 so far + 250 a year (tenure counted as one year) for 3 years.
        assert best.lifetime_value == Decimal("1000.00")
        assert (best.tier, worst.tier) == ("gold", "bronze")
        assert (best.profitability_tier, best.average_order) == ("gold", Decimal("50.00"))
        assert {t.tier: t.customers for t in tiers.tiers} == {
            "platinum": 0,
            "gold": 1,  # 1000
            "silver": 2,  # 640, 360
            "bronze": 2,  # 160, 40
            "none": 0,
        }
        assert [c.id for c in gold] == [ids[4]]

    async def test_a_customers_orders_of_one_run_publish_one_value_event(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        bob = await register(sessions, "bob@example.com")
        run = [
            order(ada, "o-1", "100", DAY),
            order(bob, "o-2", "40", DAY),
            order(ada, "o-3", "300", DAY + timedelta(days=730, hours=12), cost="100"),
        ]
        async with transaction(sessions) as session:
            await analytics_projection.record_orders(session, run, TOPIC)

        values = [e.data for e in await published(sessions) if e.type == VALUE_CHANGED]
        assert sorted(v.customer_id for v in values) == sorted([ada, bob])  # type: ignore[attr-defined]
        mine = next(v for v in values if v.customer_id == ada)  # type: ignore[attr-defined]
        # Profit 300 over two years: 150 a year, three more years: 300 + 450.
        assert (mine.orders, mine.revenue, mine.profit, mine.lifetime_value, mine.tier) == (  # type: ignore[attr-defined]
            2,
            Decimal("400.00"),
            Decimal("300.00"),
            Decimal("750.00"),
            "silver",
        )
        async with sessions() as session:
            metrics = await analytics_service.customer_metrics(session, ada)
        assert (metrics.lifetime_value, metrics.tier) == (Decimal("750.00"), "silver")

    async def test_a_customer_without_orders_has_no_scores(self, sessions: SessionFactory) -> None:
        ada = await register(sessions, "ada@example.com")
        async with sessions() as session:
            metrics = await analytics_service.customer_metrics(session, ada)
        assert (metrics.orders, metrics.rfm.combined, metrics.profitability_tier) == (
            0,
            None,
            "none",
        )


class TestTrends:
    async def test_revenue_by_country_per_week_matches_the_hand_computed_fixture(
        self, sessions: SessionFactory
    ) -> None:
        gb = await register(sessions, "gb@example.com", country="GB", birth_date="1990-06-01")
        us = await register(sessions, "us@example.com", country="US", birth_date="1960-01-01")
        fixture = [  # (customer, day offset from Monday 2 March, revenue)
            (gb, 0, "10.00"),
            (gb, 6, "5.50"),
            (us, 2, "100.00"),
            (gb, 7, "20.00"),
            (us, 13, "1.25"),
            (us, 14, "7.00"),
        ]
        for n, (customer, days, revenue) in enumerate(fixture):
            await deliver(sessions, order(customer, f"o-{n}", revenue, DAY + timedelta(days=days)))

        async with sessions() as session:
            by_country = await analytics_service.trends(
                session,
                metric="revenue",
                by="country",
                interval="week",
                start=date(2026, 3, 2),
                end=date(2026, 3, 22),
            )
            by_age = await analytics_service.trends(
                session,
                metric="orders",
                by="age_band",
                interval="month",
                start=date(2026, 3, 1),
                end=date(2026, 3, 31),
            )

        series = {s.group: [p.value for p in s.points] for s in by_country.series}
        assert series == {"GB": [15.5, 20.0, 0.0], "US": [100.0, 1.25, 7.0]}
        assert [p.period for p in by_country.series[0].points] == [
            date(2026, 3, 2),
            date(2026, 3, 9),
            date(2026, 3, 16),
        ]
        ages = {s.group: [p.value for p in s.points] for s in by_age.series}
        assert ages == {"35-44": [3.0], "65+": [3.0]}


class TestForecast:
    async def test_holt_winters_continues_a_trend_and_reports_its_backtest(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))

        async with sessions() as session:
            reply = await analytics_service.forecast(
                session,
                metric="revenue",
                interval="week",
                start=start,
                end=start + timedelta(weeks=9, days=6),
                horizon=2,
                seasonal_periods=None,
            )
            with pytest.raises(NotEnoughHistory):
                await analytics_service.forecast(
                    session,
                    metric="revenue",
                    interval="week",
                    start=start,
                    end=start + timedelta(weeks=2),
                    horizon=2,
                    seasonal_periods=None,
                )

        assert "Holt-Winters" in reply.method
        assert [p.period for p in reply.forecast] == [date(2026, 3, 16), date(2026, 3, 23)]
        assert 180 <= reply.forecast[0].value <= 215
        assert reply.backtest.holdout == 2
        assert reply.backtest.mae < 20 and reply.backtest.mape is not None

    async def test_a_flat_history_continues_flat_without_starting_a_worker(
        self, sessions: SessionFactory
    ) -> None:
        def no_worker() -> Executor:
            raise AssertionError("a worker was asked for a history with nothing to fit")

        async with sessions() as session:
            reply = await analytics_service.forecast(
                session,
                metric="revenue",
                interval="week",
                start=date(2026, 1, 5),
                end=date(2026, 3, 15),
                horizon=3,
                seasonal_periods=None,
                executor=no_worker,
            )

        assert [p.value for p in reply.history] == [0.0] * 10
        assert [p.value for p in reply.forecast] == [0.0, 0.0, 0.0]
        assert (reply.method, reply.backtest.mae) == (analytics_service.CONSTANT_METHOD, 0.0)


class TestSocialReplies:
    async def test_a_reply_support_sent_is_on_the_customers_timeline(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        reply = SocialReplySent(
            customer_id=ada,
            mention_id="mnt-1",
            reply_id="rpl-1",
            platform="mastodon",
            handle="@ada",
            text="Yes, until 6pm!",
            author="pr:linus",
        )
        await deliver(sessions, reply, "e-reply")

        async with sessions() as session:
            page = await timeline_service.page(
                session, ada, types=["social.reply.sent"], limit=10, cursor=None
            )
        [item] = page.items
        assert (item.id, item.type) == ("e-reply", "rapport.social.reply.sent.v2")
        assert item.data["text"] == "Yes, until 6pm!"


class TestForecastModelsFittedAheadOfTime:
    async def test_requests_read_the_fitted_model_and_say_how_old_it_is(
        self, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        fits: list[tuple[Any, ...]] = []
        fit = analytics_service.forecast

        async def counted(session: Any, **arguments: Any) -> Any:
            fits.append(tuple(arguments.values()))
            return await fit(session, **arguments)

        monkeypatch.setattr(analytics_service, "forecast", counted)
        forecaster = Forecaster(sessions)
        end = start + timedelta(weeks=9, days=6)
        key: Key = ("revenue", "week", None, start, end)

        first, same = await asyncio.gather(forecaster.forecast(key, 2), forecaster.forecast(key, 2))
        later = await forecaster.forecast(key, 5)

        assert len(fits) == 1  # one fit for the two callers at once and the later one
        assert [p.period for p in first.forecast] == [date(2026, 3, 16), date(2026, 3, 23)]
        assert same.forecast == first.forecast and later.forecast[:2] == first.forecast
        assert len(later.forecast) == 5 and later.fitted_at == first.fitted_at
        assert 0 <= first.age_s <= later.age_s
        assert first.backtest.holdout == 2  # a quarter of the ten weeks

    async def test_the_refresh_fits_every_default_model_and_the_windows_asked_for(
        self, sessions: SessionFactory
    ) -> None:
        forecaster = Forecaster(sessions)
        asked: Key = ("orders", "week", None, date(2026, 1, 5), date(2026, 1, 19))
        with pytest.raises(NotEnoughHistory):  # three weeks are too few
            await forecaster.forecast(asked, 3)

        await forecaster.refresh()

        fitted = set(forecaster._models)
        assert set(forecaster.default_keys()) <= fitted and asked in fitted
        assert len(forecaster.default_keys()) == 12  # four metrics, three intervals
        default = await forecaster.forecast(("revenue", "week", None, None, None), 4)
        assert len(default.forecast) == 4 and forecaster.rounds == 1

    async def test_a_new_process_answers_from_the_stored_models_without_fitting(
        self, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        key: Key = ("revenue", "week", None, start, start + timedelta(weeks=9, days=6))
        fitted = await Forecaster(sessions).forecast(key, 3)
        async with transaction(sessions) as session:
            await analytics_store.save_forecast_model(session, "revenue|week|x|-|-", {}, utcnow())
            await analytics_store.save_forecast_model(
                session, "orders|week|-|-|-", {"old": 1}, utcnow()
            )

        async def no_fit(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("a stored model was fitted again")

        monkeypatch.setattr(analytics_service, "forecast", no_fit)
        restarted = Forecaster(sessions)
        loaded = await restarted.load()
        again = await restarted.forecast(key, 3)

        assert loaded == 1  # the rows it cannot read are left to the next fit
        assert again.forecast == fitted.forecast and again.fitted_at == fitted.fitted_at
        assert again.age_s >= fitted.age_s

    async def test_fits_run_in_a_worker_process_that_is_replaced_when_it_dies(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        end = start + timedelta(weeks=9, days=6)
        worker = FitWorker()
        in_process = Forecaster(sessions, worker)
        on_thread = Forecaster(sessions)
        try:
            key: Key = ("revenue", "week", None, start, end)
            fitted = await in_process.forecast(key, 3)
            [process] = worker.started()._processes.values()  # type: ignore[attr-defined]
            process.kill()
            process.join()
            other: Key = ("revenue", "week", None, start, end - timedelta(weeks=1))
            after_death = await in_process.forecast(other, 3)
        finally:
            await worker.stop()

        assert fitted.forecast == (await on_thread.forecast(key, 3)).forecast
        assert after_death.forecast == (await on_thread.forecast(other, 3)).forecast


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
            erased = await gdpr_service.forget(session, ada, ["profile"])
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
            await tracking_service.ingest(session, late, topic=TOPIC)

        async with sessions() as session:
            mine = await gdpr_service.local_records(session, ada)
            theirs = await gdpr_service.local_records(session, dupe)
            assert await customer_store.find_by_email(session, "ada2@example.com") is None
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
            await gdpr_service.forget(session, ada, ["profile"])
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
            await gdpr_service.forget(session, ada, ["profile"])

        assert [(e.type, e.data.customer_id) for e in await published(sessions)] == [
            ("rapport.customer.registered.v2", grace)
        ]
        assert await gdpr_service.outbox_clear(sessions, [ada])
