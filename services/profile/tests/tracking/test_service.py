"""Tracking calls ingested a batch at a time, ending as they do one by one; Segment's event
names mapped to domain events."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from profile_testing import DAY, TOPIC, deliver, message, published, register
from sqlalchemy import event
from sqlmodel import select

from rapport_events.codec import Envelope
from rapport_events.db import SessionFactory, transaction
from rapport_events.types import (
    InteractionTracked,
)
from rapport_profile.customers.models import Customer
from rapport_profile.customers.store import SqlCustomerStore
from rapport_profile.gdpr import service as gdpr_service
from rapport_profile.identity.models import Identity
from rapport_profile.settings import Settings
from rapport_profile.timeline import service as timeline_service
from rapport_profile.tracking import identify as tracking_identify
from rapport_profile.tracking import service as tracking_service
from rapport_profile.tracking.models import TrackedMessage
from rapport_profile.tracking.parsing import ANONYMOUS, BadTrackingCall, Message
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


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
                SqlProfileUnitOfWork(session, TOPIC), mixed_calls("b-", *people["b-"])
            )
        singly = 0
        for call in mixed_calls("s-", *people["s-"]):
            async with transaction(sessions) as session:
                singly += await tracking_service.ingest(
                    SqlProfileUnitOfWork(session, TOPIC), [call]
                )
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
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), [visit])
        for erased in (ada, tracking_identify.pseudo_id(ANONYMOUS, "a-7")):
            async with transaction(sessions) as session:
                await gdpr_service.forget(SqlProfileUnitOfWork(session, TOPIC), erased, ["profile"])
        start = len(await published(sessions))
        batch = [
            message(type="track", userId=ada, event="Late", messageId="m-1"),
            message(type="track", userId=bob, event="Clicked", messageId="m-2"),
            message(type="page", anonymousId="a-7", name="Late", messageId="m-3"),
            message(type="track", userId=ada, anonymousId="a-8", event="Late", messageId="m-4"),
            message(type="track", userId=bob, event="Clicked again", messageId="m-5"),
        ]

        async with transaction(sessions) as session:
            applied = await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), batch)

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
            applied = [await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), first)]
        async with transaction(sessions) as session:
            applied.append(
                await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), second)
            )

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
                    assert (
                        await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), batch)
                        == count
                    )
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
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session), ada, types=[], limit=10, cursor=None
            )
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
        grace = await SqlCustomerStore(session).find_by_email(f"{run}grace@x.io")
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
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session),
                ids[owner],
                types=["interaction.tracked"],
                limit=100,
                cursor=None,
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
