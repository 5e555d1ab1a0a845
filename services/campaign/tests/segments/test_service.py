"""Segments on a real database (SQLite and PostgreSQL): creation, live updates, refresh,
merges and erasure, fed through the library's consumer runner."""

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rapport_campaign import errors, lifecycle
from rapport_campaign.audience import projection as audience_projection
from rapport_campaign.audience import service as audience_service
from rapport_campaign.audience.models import AudienceMemberPublic
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments.models import SegmentCreate
from rapport_campaign.settings import Settings
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.base import Event, utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.testing.examples import value_after as value_of
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)

Deliver = Callable[..., Awaitable[Any]]
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


def registered(customer_id: str, **fields: Any) -> CustomerRegistered:
    values: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "first_name": customer_id.title(),
        "last_name": "Tester",
        "country": "FR",
    }
    values.update(fields)
    return CustomerRegistered(customer_id=customer_id, **values)


def order(
    customer_id: str,
    order_id: str,
    revenue: str = "50",
    category: str = "shoes",
    days_ago: float = 0,
    **fields: Any,
) -> OrderCompleted:
    return OrderCompleted(
        customer_id=customer_id,
        order_id=order_id,
        items=(LineItem(product_id=f"p-{category}", category=category, price=Decimal(revenue)),),
        revenue=Decimal(revenue),
        occurred_at=utcnow() - timedelta(days=days_ago),
        **fields,
    )


def consent(customer_id: str, granted: bool, version: int, channel: str = "email") -> Event:
    model = ConsentGranted if granted else ConsentRevoked
    return model(
        customer_id=customer_id,
        purpose="marketing",
        channel=channel,  # type: ignore[arg-type]
        source="web_form",
        version=version,
    )


async def create(sessions: SessionFactory, settings: Settings, rule: Any, name: str = "s") -> str:
    async with transaction(sessions) as session:
        segment, _ = await segment_service.create_segment(
            SqlCampaignUnitOfWork(session, settings.kafka.topic),
            SegmentCreate.model_validate({"name": name, "rule": rule}),
        )
        return segment.id


async def members(sessions: SessionFactory, segment_id: str) -> list[str]:
    async with sessions() as session:
        _, page, _ = await segment_service.member_page(
            SqlCampaignUnitOfWork(session), segment_id, cursor=None, limit=1000
        )
    return [row.customer_id for row in page]


def changes(events: list[Event], segment_id: str) -> list[tuple[str, str]]:
    return [
        (type(e).__name__, e.customer_id)
        for e in events
        if isinstance(e, SegmentEntered | SegmentExited) and e.segment_id == segment_id
    ]


class TestCreation:
    async def test_members_are_computed_for_everyone_and_announced(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), registered("bob"), registered("cid", country="DE"))

        segment_id = await create(
            sessions, settings, {"attribute": "country", "op": "eq", "value": "fr"}
        )

        assert await members(sessions, segment_id) == ["ann", "bob"]
        assert changes(await outbox(sessions), segment_id) == [
            ("SegmentEntered", "ann"),
            ("SegmentEntered", "bob"),
        ]

    async def test_behaviour_counts_matching_orders_inside_the_window(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(
            registered("twice"), registered("once"), registered("old"), registered("hats")
        )
        await deliver(
            order("twice", "o1"),
            order("twice", "o2", days_ago=3),
            order("once", "o3"),
            order("old", "o4"),
            order("old", "o5", days_ago=60),
            order("hats", "o6", category="hats"),
            order("hats", "o7", category="hats"),
        )

        segment_id = await create(
            sessions,
            settings,
            {
                "event": "order.completed",
                "at_least": 2,
                "within_days": 30,
                "where": [{"property": "category", "op": "eq", "value": "Shoes"}],
            },
        )

        assert await members(sessions, segment_id) == ["twice"]

    async def test_at_most_zero_finds_customers_without_the_behaviour(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("buyer"), registered("browser"), order("buyer", "o1"))

        segment_id = await create(sessions, settings, {"event": "order.completed", "at_most": 0})

        assert await members(sessions, segment_id) == ["browser"]

    async def test_tier_and_recency_score_come_from_profiles_value(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("big"), registered("small"), registered("lapsed"))
        orders = [
            order("big", "o1", revenue="1200", days_ago=5),  # lifetime value 4800: gold
            order("small", "o2", revenue="20", days_ago=5),  # 80: bronze
            order("lapsed", "o3", revenue="1500", days_ago=200),  # 6000: platinum
        ]
        await deliver(*orders, *(value_of(o) for o in orders))

        gold = await create(sessions, settings, {"metric": "tier", "op": "gte", "value": "gold"})
        recent = await create(
            sessions,
            settings,
            {"all": [{"segment": gold}, {"metric": "recency_score", "op": "gte", "value": 4}]},
        )

        assert await members(sessions, gold) == ["big", "lapsed"]
        assert await members(sessions, recent) == ["big"]

    async def test_age_is_read_from_the_birth_date(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        today = date.today()
        await deliver(
            registered("young", birth_date=today.replace(year=today.year - 19)),
            registered("thirty", birth_date=today.replace(year=today.year - 30)),
            registered("unknown"),
        )

        segment_id = await create(
            sessions, settings, {"attribute": "age", "op": "between", "value": [25, 40]}
        )

        assert await members(sessions, segment_id) == ["thirty"]

    async def test_a_micro_market_of_two_customers_is_a_segment(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), registered("bob"), registered("cid"))

        segment_id = await create(
            sessions,
            settings,
            {"attribute": "email", "op": "in", "value": ["ANN@example.com", "cid@example.com"]},
        )

        assert await members(sessions, segment_id) == ["ann", "cid"]

    async def test_an_unknown_segment_reference_is_refused(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        with pytest.raises(errors.InvalidRequest, match="unknown segments: seg_missing"):
            await create(sessions, settings, {"segment": "seg_missing"})


class TestLiveMembership:
    async def test_an_order_moves_a_customer_in_once(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"))
        segment_id = await create(sessions, settings, {"event": "order.completed"}, name="buyers")

        await deliver(order("ann", "o1"), order("ann", "o2"))

        assert await members(sessions, segment_id) == ["ann"]
        entered = [e for e in await outbox(sessions) if isinstance(e, SegmentEntered)]
        assert [(e.customer_id, e.segment_name) for e in entered] == [("ann", "buyers")]

    async def test_a_revoked_consent_moves_a_customer_out(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), consent("ann", True, 1))
        segment_id = await create(sessions, settings, {"consent": "email"})
        assert await members(sessions, segment_id) == ["ann"]

        await deliver(consent("ann", False, 2))

        assert await members(sessions, segment_id) == []
        assert changes(await outbox(sessions), segment_id)[-1] == ("SegmentExited", "ann")

    async def test_an_older_consent_version_never_overwrites_a_newer_one(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        segment_id = await create(sessions, settings, {"consent": "email"})

        await deliver(consent("ann", True, 5), consent("ann", False, 4))

        assert await members(sessions, segment_id) == ["ann"]

    async def test_a_profile_change_is_followed(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann", city="Paris"))
        segment_id = await create(
            sessions, settings, {"attribute": "city", "op": "eq", "value": "Lyon"}
        )

        await deliver(CustomerUpdated(customer_id="ann", changes={"city": "Lyon"}))
        assert await members(sessions, segment_id) == ["ann"]
        await deliver(CustomerUpdated(customer_id="ann", changes={"city": "Nice"}))
        assert await members(sessions, segment_id) == []

    async def test_a_segment_of_segments_follows_in_the_same_event(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"))
        buyers = await create(sessions, settings, {"event": "order.completed"})
        loyal = await create(
            sessions,
            settings,
            {"all": [{"segment": buyers}, {"metric": "loyalty_points", "op": "gte", "value": 100}]},
        )

        await deliver(
            LoyaltyPointsEarned(customer_id="ann", program="club", points=150, balance=150)
        )
        assert await members(sessions, loyal) == []
        await deliver(order("ann", "o1"))

        assert await members(sessions, buyers) == ["ann"]
        assert await members(sessions, loyal) == ["ann"]
        assert changes(await outbox(sessions), loyal) == [("SegmentEntered", "ann")]

    async def test_a_replayed_event_changes_nothing(
        self, sessions: SessionFactory, settings: Settings, outbox: Outbox
    ) -> None:
        from rapport_events.codec import Envelope

        async with transaction(sessions) as session:
            await audience_projection.apply_registrations(session, [registered("ann")], settings)
        segment_id = await create(sessions, settings, {"metric": "orders", "op": "eq", "value": 1})
        event = order("ann", "o1")
        envelope = Envelope(data=event, source="/services/profile")

        for _ in range(2):
            async with transaction(sessions) as session:
                await audience_projection.record_orders(session, [envelope], settings)
                await audience_projection.apply_values(session, [value_of(event)], settings)

        async with sessions() as session:
            member, _ = await audience_service.get_member(SqlCampaignUnitOfWork(session), "ann")
        assert member.orders == 1
        assert await members(sessions, segment_id) == ["ann"]
        assert changes(await outbox(sessions), segment_id) == [("SegmentEntered", "ann")]

    async def test_a_cart_with_a_matching_product_counts_as_behaviour(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        segment_id = await create(
            sessions,
            settings,
            {
                "event": "cart.updated",
                "within_days": 1,
                "where": [
                    {"property": "product_name", "op": "contains", "value": "boot"},
                    {"property": "price", "op": "gte", "value": 100},
                ],
            },
        )

        await deliver(
            CartUpdated(
                customer_id="ann",
                cart_id="c1",
                action="product_added",
                items=(LineItem(product_id="p1", name="Rain Boots", price=Decimal("120")),),
                value=Decimal("120"),
            )
        )

        assert await members(sessions, segment_id) == ["ann"]


class TestCustomTraits:
    async def test_text_number_and_presence_rules_follow_profile_traits(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), registered("bob"), registered("cid"))
        await deliver(
            CustomerUpdated(customer_id="ann", changes={"traits": {"plan": "Pro", "seats": 12}}),
            CustomerUpdated(customer_id="bob", changes={"traits": {"plan": "team", "seats": "9"}}),
        )
        pro = await create(sessions, settings, {"trait": "plan", "op": "eq", "value": "pro"}, "a")
        big = await create(sessions, settings, {"trait": "seats", "op": "gte", "value": 10}, "b")
        seats = await create(sessions, settings, {"trait": "seats", "op": "exists"}, "c")
        none = await create(sessions, settings, {"trait": "plan", "op": "missing"}, "d")

        assert await members(sessions, pro) == ["ann"]
        assert await members(sessions, big) == ["ann"]  # bob's "9" is text, not a number
        assert await members(sessions, seats) == ["ann", "bob"]
        assert await members(sessions, none) == ["cid"]
        await deliver(CustomerUpdated(customer_id="cid", changes={"traits": {"plan": "pro"}}))
        assert await members(sessions, pro) == ["ann", "cid"]
        assert await members(sessions, none) == []
        async with sessions() as session:
            member, _segments = await audience_service.get_member(
                SqlCampaignUnitOfWork(session), "ann"
            )
        assert AudienceMemberPublic.model_validate(member).traits == {"plan": "Pro", "seats": 12}


class TestPreview:
    async def test_counts_without_saving_anything(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), registered("bob", country="DE"))
        before = len(await outbox(sessions))
        rule = SegmentCreate.model_validate(
            {"name": "x", "rule": {"attribute": "country", "op": "eq", "value": "DE"}}
        ).rule

        async with transaction(sessions) as session:
            count, sample, timed = await segment_service.preview_segment(
                SqlCampaignUnitOfWork(session), rule
            )

        assert (count, sample, timed) == (1, ["bob"], False)
        async with sessions() as session:
            assert await segment_service.list_segments(SqlCampaignUnitOfWork(session)) == []
        assert len(await outbox(sessions)) == before


class TestRefresh:
    async def test_a_window_that_passes_moves_a_customer_out(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), order("ann", "o1", days_ago=0.5))
        segment_id = await create(
            sessions, settings, {"event": "order.completed", "within_days": 1}
        )
        assert await members(sessions, segment_id) == ["ann"]

        async with transaction(sessions) as session:
            segment, _ = await segment_service.get_segment(
                SqlCampaignUnitOfWork(session), segment_id
            )
            count = await segment_service.recompute_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                segment,
                now=utcnow() + timedelta(days=1),
            )

        assert count == 0
        assert await members(sessions, segment_id) == []
        assert changes(await outbox(sessions), segment_id)[-1] == ("SegmentExited", "ann")


class TestMembersPage:
    async def test_pages_walk_every_member_once_with_the_total(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(*(registered(f"c{i}") for i in range(5)))
        segment_id = await create(
            sessions, settings, {"attribute": "country", "op": "eq", "value": "FR"}
        )

        seen, cursor = [], None
        async with sessions() as session:
            while True:
                total, page, cursor = await segment_service.member_page(
                    SqlCampaignUnitOfWork(session), segment_id, cursor=cursor, limit=2
                )
                seen += [row.customer_id for row in page]
                if cursor is None:
                    break

        assert total == 5
        assert seen == [f"c{i}" for i in range(5)]


class TestMerge:
    async def test_the_survivor_takes_the_orders_and_late_events_follow(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        o1, o2, o3 = order("dupe", "o1"), order("keep", "o2"), order("dupe", "o3")
        await deliver(registered("keep"), registered("dupe"), o1, value_of(o1))
        buyers = await create(sessions, settings, {"metric": "orders", "op": "gte", "value": 2})
        await deliver(o2, value_of(o2))
        assert await members(sessions, buyers) == []

        # Profile publishes the survivor's new value with the merge.
        survivor_o1 = o1.model_copy(update={"customer_id": "keep"})
        await deliver(
            value_of(o2, survivor_o1),
            CustomerMerged(customer_id="keep", merged_customer_id="dupe", reason="email"),
        )
        assert await members(sessions, buyers) == ["keep"]
        survivor_o3 = o3.model_copy(update={"customer_id": "keep"})
        await deliver(o3, value_of(o2, survivor_o1, survivor_o3))

        async with sessions() as session:
            survivor, _ = await audience_service.get_member(SqlCampaignUnitOfWork(session), "keep")
            with pytest.raises(errors.NotFound):
                await audience_service.get_member(SqlCampaignUnitOfWork(session), "dupe")
        assert survivor.orders == 3

    async def test_the_merged_id_leaves_its_segments(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("keep", country="DE"), registered("dupe"))
        french = await create(
            sessions, settings, {"attribute": "country", "op": "eq", "value": "FR"}
        )

        await deliver(CustomerMerged(customer_id="keep", merged_customer_id="dupe", reason="email"))

        assert await members(sessions, french) == []
        assert changes(await outbox(sessions), french)[-1] == ("SegmentExited", "dupe")


class TestErasure:
    async def test_everything_goes_but_a_tombstone_and_late_events_are_dropped(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), consent("ann", True, 1), order("ann", "o1"))
        segment_id = await create(sessions, settings, {"event": "order.completed"})

        await deliver(CustomerErased(customer_id="ann"))
        await deliver(order("ann", "o2"), registered("ann"))

        async with sessions() as session:
            records = await lifecycle.export_customer(SqlCampaignUnitOfWork(session), "ann")
        assert {name: rows for name, rows in records.items() if rows} == {
            "campaign_tombstones": [records["campaign_tombstones"][0]]
        }
        assert records["campaign_tombstones"][0]["customer_id"] == "ann"
        assert await members(sessions, segment_id) == []


class TestDeletion:
    async def test_a_segment_in_use_by_another_cannot_be_deleted(
        self, sessions: SessionFactory, settings: Settings
    ) -> None:
        base = await create(sessions, settings, {"consent": "email"})
        await create(sessions, settings, {"not": {"segment": base}})

        async with transaction(sessions) as session:
            with pytest.raises(errors.Conflict, match="use this segment"):
                await segment_service.delete_segment(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic), base
                )

    async def test_deleting_a_segment_announces_its_members_leave(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"))
        segment_id = await create(
            sessions, settings, {"attribute": "country", "op": "eq", "value": "FR"}
        )

        async with transaction(sessions) as session:
            await segment_service.delete_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), segment_id
            )

        assert changes(await outbox(sessions), segment_id) == [
            ("SegmentEntered", "ann"),
            ("SegmentExited", "ann"),
        ]
