"""Campaigns, journeys, send-time checks, attribution and reports on a real database
(SQLite and PostgreSQL); the channels themselves are tested in messaging/test_delivery."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from rapport_campaign import errors, lifecycle
from rapport_campaign.audience import service as audience_service
from rapport_campaign.campaigns import previews, reports
from rapport_campaign.campaigns import service as campaign_service
from rapport_campaign.campaigns.models import CampaignCreate
from rapport_campaign.journeys import service as journey_service
from rapport_campaign.journeys.models import JourneyCreate
from rapport_campaign.messaging import service as messaging_service
from rapport_campaign.messaging.models import Message
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments.models import SegmentCreate
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking.models import Click, Unsubscribe
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.base import Event, utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.testing.examples import value_after
from rapport_events.types import (
    CampaignConversionAttributed,
    CampaignMessageClicked,
    CampaignMessageDelivered,
    CampaignMessageSent,
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    InteractionTracked,
    LineItem,
    OrderCompleted,
)

Deliver = Callable[..., Awaitable[Any]]
Outbox = Callable[[SessionFactory], Awaitable[list[Event]]]


def registered(customer_id: str, **fields: Any) -> CustomerRegistered:
    values: dict[str, Any] = {
        "email": f"{customer_id}@example.com",
        "first_name": customer_id.title(),
        "last_name": "Tester",
        "phone": "+33600000000",
    }
    values.update(fields)
    return CustomerRegistered(customer_id=customer_id, **values)


def granted(customer_id: str, channel: str = "email", version: int = 1) -> ConsentGranted:
    return ConsentGranted(
        customer_id=customer_id,
        purpose="marketing",
        channel=channel,  # type: ignore[arg-type]
        source="web_form",
        version=version,
    )


def order(
    customer_id: str, order_id: str, revenue: str = "80", product: str = "p-1", **fields: Any
) -> OrderCompleted:
    values: dict[str, Any] = {
        "items": (
            LineItem(product_id=product, name=product, category="shoes", price=Decimal(revenue)),
        ),
        "revenue": Decimal(revenue),
    }
    values.update(fields)
    return OrderCompleted(customer_id=customer_id, order_id=order_id, **values)


def cart(customer_id: str, cart_id: str = "cart-1", **fields: Any) -> CartUpdated:
    values: dict[str, Any] = {
        "action": "product_added",
        "items": (LineItem(product_id="p-9", name="Boots", price=Decimal("90")),),
        "value": Decimal("90"),
    }
    values.update(fields)
    return CartUpdated(customer_id=customer_id, cart_id=cart_id, **values)


def content(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "email",
        "variants": [
            {"name": "A", "subject": "Hi {{ customer.first_name }}", "body": "A {{ cta_url }}"},
        ],
        "link": "https://shop.example/spring",
    }
    values.update(fields)
    return values


async def new_campaign(sessions: SessionFactory, **fields: Any) -> str:
    data = content(**fields)
    data.setdefault("audience", {"customer_ids": ["ann"]})
    async with transaction(sessions) as session:
        campaign = await campaign_service.create_campaign(
            SqlCampaignUnitOfWork(session), CampaignCreate.model_validate(data)
        )
        return campaign.id


async def launch(sessions: SessionFactory, campaign_id: str, at: Any = None) -> str:
    async with transaction(sessions) as session:
        return (
            await campaign_service.launch_campaign(SqlCampaignUnitOfWork(session), campaign_id, at)
        ).status


async def new_journey(sessions: SessionFactory, **fields: Any) -> str:
    data = content(name="Journey", **fields)
    async with transaction(sessions) as session:
        journey = await journey_service.create_journey(
            SqlCampaignUnitOfWork(session), JourneyCreate.model_validate(data)
        )
        return journey.id


async def messages(sessions: SessionFactory, campaign_id: str | None = None) -> list[Message]:
    async with sessions() as session:
        query = select(Message).order_by(Message.created_at, Message.id)  # type: ignore[arg-type]
        if campaign_id is not None:
            query = query.where(Message.campaign_id == campaign_id)
        return list((await session.exec(query)).all())


async def fire(sessions: SessionFactory, after: timedelta) -> int:
    async with transaction(sessions) as session:
        return await journey_service.fire_due_journeys(
            SqlCampaignUnitOfWork(session), utcnow() + after
        )


async def send(
    sessions: SessionFactory, settings: Settings, succeed: bool = True
) -> list[messaging_service.Outgoing]:
    """What the sender does, without a channel: claim, prepare, record the outcome."""
    tokens = Tokens("secret", settings.public_url)
    recommender = messaging_service.Recommender()
    async with transaction(sessions) as session:
        claimed = [
            m.id
            for m in await messaging_service.claim_due(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), settings
            )
        ]
    prepared = []
    for message_id in claimed:
        async with transaction(sessions) as session:
            outgoing = await messaging_service.prepare(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                message_id,
                settings,
                tokens,
                recommender,
            )
        if outgoing is None:
            continue
        prepared.append(outgoing)
        async with transaction(sessions) as session:
            if succeed:
                await messaging_service.finish_sent(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic), outgoing
                )
            else:
                await messaging_service.finish_failed(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic),
                    message_id,
                    "421 busy",
                    False,
                    settings,
                )
    return prepared


async def report(sessions: SessionFactory, settings: Settings, campaign_id: str) -> Any:
    async with sessions() as session:
        return await reports.campaign_report(session, campaign_id, settings)


async def click(sessions: SessionFactory, settings: Settings, message_id: str) -> str:
    async with transaction(sessions) as session:
        return await tracking_service.record_click(
            SqlCampaignUnitOfWork(session, settings.kafka.topic),
            message_id,
            "https://shop.example/spring",
        )


class TestLaunch:
    async def test_a_segment_campaign_targets_every_member_across_variants(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(*(registered(name) for name in ("ann", "bob", "cid", "dan")))
        async with transaction(sessions) as session:
            segment, _ = await segment_service.create_segment(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                SegmentCreate.model_validate(
                    {"name": "all", "rule": {"attribute": "email", "op": "exists"}}
                ),
            )
        campaign_id = await new_campaign(
            sessions,
            audience={"segment_id": segment.id},
            variants=[
                {"name": "A", "subject": "a", "body": "a"},
                {"name": "B", "subject": "b", "body": "b"},
            ],
        )

        assert await launch(sessions, campaign_id) == "sending"

        sent = await messages(sessions, campaign_id)
        assert sorted(m.customer_id or "" for m in sent) == ["ann", "bob", "cid", "dan"]
        assert sorted(m.variant or "" for m in sent) == ["A", "A", "B", "B"]
        assert {m.status for m in sent} == {"pending"}

    async def test_a_list_campaign_follows_merges_and_skips_the_erased(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("keep"), registered("dupe"), registered("gone"))
        await deliver(
            CustomerMerged(customer_id="keep", merged_customer_id="dupe", reason="email"),
            CustomerErased(customer_id="gone"),
        )
        campaign_id = await new_campaign(
            sessions, audience={"customer_ids": ["dupe", "keep", "gone"]}
        )

        await launch(sessions, campaign_id)

        assert [m.customer_id for m in await messages(sessions, campaign_id)] == ["keep"]

    async def test_a_later_time_schedules_and_the_clock_launches(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        campaign_id = await new_campaign(sessions)

        assert await launch(sessions, campaign_id, utcnow() + timedelta(hours=1)) == "scheduled"
        assert await messages(sessions, campaign_id) == []
        async with transaction(sessions) as session:
            assert (
                await campaign_service.launch_due(
                    SqlCampaignUnitOfWork(session), utcnow() + timedelta(hours=2)
                )
                == 1
            )

        assert len(await messages(sessions, campaign_id)) == 1

    async def test_the_clock_skips_a_campaign_being_launched_by_hand(
        self, sessions: SessionFactory, deliver: Deliver, database_url: str
    ) -> None:
        if database_url.startswith("sqlite"):
            pytest.skip("SQLite has one writer at a time: the two launches cannot overlap")
        await deliver(registered("ann"), registered("bob"))
        campaign_id = await new_campaign(sessions, audience={"customer_ids": ["ann", "bob"]})
        await launch(sessions, campaign_id, utcnow() + timedelta(minutes=1))

        async def clock() -> int:
            async with transaction(sessions) as session:
                return await campaign_service.launch_due(
                    SqlCampaignUnitOfWork(session), utcnow() + timedelta(minutes=2)
                )

        async with transaction(sessions) as by_hand:
            await campaign_service.launch_campaign(
                SqlCampaignUnitOfWork(by_hand), campaign_id, utcnow()
            )
            ticking = asyncio.create_task(clock())
            await asyncio.wait({ticking}, timeout=5)
        started = await ticking

        assert started == 0
        assert sorted(m.customer_id for m in await messages(sessions, campaign_id)) == [
            "ann",
            "bob",
        ]

    async def test_a_campaign_launches_once(self, sessions: SessionFactory) -> None:
        campaign_id = await new_campaign(sessions)
        await launch(sessions, campaign_id)

        with pytest.raises(errors.Conflict, match="only a draft is launched"):
            await launch(sessions, campaign_id)

    async def test_cancelling_drops_what_was_not_sent(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        campaign_id = await new_campaign(sessions)
        await launch(sessions, campaign_id)

        async with transaction(sessions) as session:
            await campaign_service.cancel_campaign(SqlCampaignUnitOfWork(session), campaign_id)

        assert [m.status for m in await messages(sessions, campaign_id)] == ["cancelled"]


class TestPreview:
    async def test_a_variant_renders_for_one_customer_and_nothing_is_sent(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann", city="Lyon"), order("ann", "o1", product="boots"))
        campaign_id = await new_campaign(
            sessions,
            offer={"prefix": "SPRING"},
            variants=[
                {"name": "A", "subject": "a", "body": "a"},
                {
                    "name": "B",
                    "subject": "{{ customer.first_name }} in {{ customer.city }}",
                    "body": "Code {{ offer_code }}: {{ cta_url }} {{ unsubscribe_url }}",
                    "html": "<p>{{ customer }}</p>",
                },
            ],
        )

        async with sessions() as session:
            preview = await previews.preview_message(
                SqlCampaignUnitOfWork(session), campaign_id, "ann", "B"
            )

        assert (preview.variant, preview.subject) == ("B", "Ann in Lyon")
        assert preview.text == "Code SPRING-PREVIEW: https://shop.example/spring [unsubscribe link]"
        assert preview.html == "<p>Ann Tester</p>"
        assert await messages(sessions) == []

    async def test_an_unknown_customer_or_variant_is_not_found(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        campaign_id = await new_campaign(sessions)

        async with sessions() as session:
            with pytest.raises(errors.NotFound, match="no audience member bob"):
                await previews.preview_message(SqlCampaignUnitOfWork(session), campaign_id, "bob")
            with pytest.raises(errors.NotFound, match="no variant Z"):
                await previews.preview_message(
                    SqlCampaignUnitOfWork(session), campaign_id, "ann", "Z"
                )


class TestAbTest:
    async def test_the_winner_by_conversion_goes_to_the_held_rest(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        names = ["ann", "bob", "cid", "dan", "eve", "fay"]
        await deliver(*(registered(n) for n in names), *(granted(n) for n in names))
        campaign_id = await new_campaign(
            sessions,
            audience={"customer_ids": names},
            variants=[
                {"name": "A", "subject": "a", "body": "a"},
                {"name": "B", "subject": "b", "body": "b"},
            ],
            ab_test={"test_fraction": 0.34, "decide_after_minutes": 60},
        )
        await launch(sessions, campaign_id)
        tested = await send(sessions, settings)
        assert sorted(o.variant or "" for o in tested) == ["A", "B"]
        winner = next(o for o in tested if o.variant == "B")
        await click(sessions, settings, winner.message_id)
        await deliver(order(winner.customer_id, "o-1"))

        async with transaction(sessions) as session:
            assert (
                await campaign_service.decide_winners(
                    SqlCampaignUnitOfWork(session), utcnow() + timedelta(minutes=61)
                )
                == 1
            )

        rest = [m for m in await messages(sessions, campaign_id) if m.status == "pending"]
        assert len(rest) == 4
        assert {m.variant for m in rest} == {"B"}
        assert (await report(sessions, settings, campaign_id)).winner == "B"

    async def test_conversions_outweigh_clicks(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        names = [f"c{n:02}" for n in range(12)]
        await deliver(*(registered(n) for n in names), *(granted(n) for n in names))
        campaign_id = await new_campaign(
            sessions,
            audience={"customer_ids": names},
            variants=[
                {"name": "A", "subject": "a", "body": "a"},
                {"name": "B", "subject": "b", "body": "b"},
            ],
            ab_test={"test_fraction": 0.5, "decide_after_minutes": 60},
        )
        await launch(sessions, campaign_id)
        tested = await send(sessions, settings)
        group_a = [o for o in tested if o.variant == "A"]
        group_b = [o for o in tested if o.variant == "B"]
        assert (len(group_a), len(group_b)) == (3, 3)
        for outgoing in group_a:
            await click(sessions, settings, outgoing.message_id)
        await click(sessions, settings, group_b[0].message_id)
        await deliver(order(group_b[0].customer_id, "o-1"))

        async with transaction(sessions) as session:
            assert (
                await campaign_service.decide_winners(
                    SqlCampaignUnitOfWork(session), utcnow() + timedelta(minutes=61)
                )
                == 1
            )

        result = await report(sessions, settings, campaign_id)
        variants = {v.variant: v for v in result.variants}
        assert (variants["A"].clicked, variants["A"].converted) == (3, 0)
        assert (variants["B"].clicked, variants["B"].converted) == (1, 1)
        assert result.winner == "B"
        rest = [m for m in await messages(sessions, campaign_id) if m.status == "pending"]
        assert len(rest) == 6 and {m.variant for m in rest} == {"B"}


class TestSendTimeChecks:
    async def test_without_consent_a_message_is_suppressed_and_counted(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), registered("bob"), granted("bob"))
        campaign_id = await new_campaign(sessions, audience={"customer_ids": ["ann", "bob"]})
        await launch(sessions, campaign_id)

        prepared = await send(sessions, settings)

        assert [o.customer_id for o in prepared] == ["bob"]
        result = await report(sessions, settings, campaign_id)
        assert (result.targeted, result.suppressed, result.sent) == (2, 1, 1)

    async def test_a_message_is_personalised_with_a_recommendation(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"), registered("bob"), registered("cid"))
        await deliver(
            order("ann", "o1", product="sandals"),
            order("bob", "o2", product="boots"),
            order("cid", "o3", product="boots"),
            order("cid", "o4", product="sandals"),
        )
        campaign_id = await new_campaign(
            sessions,
            offer={"prefix": "SPRING"},
            variants=[
                {
                    "name": "A",
                    "subject": "{{ customer.first_name }}, for you",
                    "body": (
                        "Try {{ recommendation.name }}. Code {{ offer_code }}. "
                        "{{ track('https://shop.example/boots') }}"
                    ),
                }
            ],
        )
        await launch(sessions, campaign_id)

        [outgoing] = await send(sessions, settings)

        [message] = await messages(sessions, campaign_id)
        assert outgoing.rendered.subject == "Ann, for you"
        assert "Try boots." in outgoing.rendered.text
        assert message.offer_code is not None and message.offer_code.startswith("SPRING-")
        assert f"Code {message.offer_code}" in outgoing.rendered.text
        assert "http://campaign.test/t/" in outgoing.rendered.text
        assert outgoing.unsubscribe_url.startswith("http://campaign.test/u/")

    async def test_the_frequency_cap_holds_back_the_extra_message(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        cap = {"max_messages": 1, "per_hours": 24}
        first = await new_campaign(sessions, frequency_cap=cap)
        second = await new_campaign(sessions, frequency_cap=cap)
        await launch(sessions, first)
        await send(sessions, settings)

        await launch(sessions, second)
        assert await send(sessions, settings) == []

        [message] = await messages(sessions, second)
        assert message.status == "capped"

    async def test_without_a_phone_an_sms_is_unreachable(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann", phone=None), granted("ann", "sms"))
        campaign_id = await new_campaign(
            sessions, channel="sms", variants=[{"name": "A", "body": "Sale!"}]
        )
        await launch(sessions, campaign_id)

        assert await send(sessions, settings) == []
        assert (await report(sessions, settings, campaign_id)).unreachable == 1

    async def test_an_unsubscribe_suppresses_at_once_and_queues_the_revocation(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        campaign_id = await new_campaign(sessions)

        async with transaction(sessions) as session:
            assert await tracking_service.unsubscribe(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), "ann", "email", None
            )
        async with transaction(sessions) as session:
            assert await tracking_service.unsubscribe(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), "ann", "email", None
            )
        await launch(sessions, campaign_id)

        assert await send(sessions, settings) == []
        async with sessions() as session:
            queued = (await session.exec(select(Unsubscribe))).all()
        assert [(u.customer_id, u.channel, u.synced_at) for u in queued] == [("ann", "email", None)]

    async def test_a_grant_after_the_unsubscribe_lifts_the_suppression(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        async with transaction(sessions) as session:
            await tracking_service.unsubscribe(
                SqlCampaignUnitOfWork(session, settings.kafka.topic), "ann", "email", None
            )
        await deliver(granted("ann", version=3))
        campaign_id = await new_campaign(sessions)
        await launch(sessions, campaign_id)

        assert [o.customer_id for o in await send(sessions, settings)] == ["ann"]


class TestOutcome:
    async def test_a_sent_message_publishes_sent_and_delivered(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        campaign_id = await new_campaign(sessions)
        await launch(sessions, campaign_id)

        [outgoing] = await send(sessions, settings)

        published = [
            type(e)
            for e in await outbox(sessions)
            if isinstance(e, CampaignMessageSent | CampaignMessageDelivered)
        ]
        assert published == [CampaignMessageSent, CampaignMessageDelivered]
        [message] = await messages(sessions, campaign_id)
        assert (message.status, message.address) == ("sent", "ann@example.com")

    async def test_a_transient_failure_is_retried_then_given_up(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        campaign_id = await new_campaign(sessions)
        await launch(sessions, campaign_id)
        await send(sessions, settings, succeed=False)
        [message] = await messages(sessions, campaign_id)
        assert (message.status, message.attempts) == ("pending", 1)

        async with transaction(sessions) as session:
            for _ in range(settings.send_max_attempts):
                await messaging_service.finish_failed(
                    SqlCampaignUnitOfWork(session, settings.kafka.topic),
                    message.id,
                    "421 busy",
                    False,
                    settings,
                )

        [message] = await messages(sessions, campaign_id)
        assert (message.status, message.reason) == ("failed", "421 busy")


class TestAttribution:
    async def sent_message(
        self, sessions: SessionFactory, settings: Settings, **fields: Any
    ) -> messaging_service.Outgoing:
        campaign_id = await new_campaign(sessions, **fields)
        await launch(sessions, campaign_id)
        [outgoing] = [o for o in await send(sessions, settings) if o.campaign_id == campaign_id]
        return outgoing

    async def test_an_order_after_a_click_credits_the_last_touch(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        first = await self.sent_message(sessions, settings, name="First")
        last = await self.sent_message(sessions, settings, name="Last")
        redirect = await click(sessions, settings, first.message_id)
        await click(sessions, settings, last.message_id)

        await deliver(order("ann", "o-1", revenue="120"))

        [attributed] = [
            e for e in await outbox(sessions) if isinstance(e, CampaignConversionAttributed)
        ]
        assert (attributed.campaign_id, attributed.order_id) == (last.campaign_id, "o-1")
        assert (attributed.revenue, attributed.model) == (Decimal("120"), "last_touch")
        assert "utm_source=rapport" in redirect and "utm_campaign=first" in redirect
        result = await report(sessions, settings, last.campaign_id)
        assert (result.clicked, result.converted, result.revenue) == (1, 1, Decimal("120"))

    async def test_first_touch_credits_the_earliest_click(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        first_touch = settings.model_copy(update={"attribution_model": "first_touch"})
        await deliver(registered("ann"), granted("ann"))
        first = await self.sent_message(sessions, settings, name="First")
        last = await self.sent_message(sessions, settings, name="Last")
        await click(sessions, settings, first.message_id)
        await click(sessions, settings, last.message_id)

        async with transaction(sessions) as session:
            conversion = await tracking_service.attribute_order(
                SqlCampaignUnitOfWork(session, settings.kafka.topic),
                "ann",
                order("ann", "o-1"),
                first_touch,
            )

        assert conversion is not None
        assert (conversion.campaign_id, conversion.model) == (first.campaign_id, "first_touch")

    async def test_a_click_older_than_the_window_earns_nothing(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        outgoing = await self.sent_message(sessions, settings, attribution_window_hours=1)
        await click(sessions, settings, outgoing.message_id)
        async with transaction(sessions) as session:
            for row in (await session.exec(select(Click))).all():
                row.clicked_at = utcnow() - timedelta(hours=2)
                session.add(row)

        await deliver(order("ann", "o-1"))

        assert not [
            e for e in await outbox(sessions) if isinstance(e, CampaignConversionAttributed)
        ]

    async def test_a_redeemed_offer_code_credits_its_message_without_a_click(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        outgoing = await self.sent_message(sessions, settings, offer={"prefix": "VIP"})
        [message] = await messages(sessions, outgoing.campaign_id)
        assert message.offer_code is not None

        await deliver(order("ann", "o-1", coupon=message.offer_code.lower()))
        await deliver(order("ann", "o-1", coupon=message.offer_code))

        result = await report(sessions, settings, outgoing.campaign_id)
        assert (result.redeemed, result.converted, result.revenue) == (1, 1, Decimal("80"))

    async def test_a_click_publishes_the_click_and_the_implied_open(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver, outbox: Outbox
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        outgoing = await self.sent_message(sessions, settings)

        await click(sessions, settings, outgoing.message_id)
        await click(sessions, settings, outgoing.message_id)

        kinds = [type(e).__name__ for e in await outbox(sessions)]
        assert kinds.count("CampaignMessageOpened") == 1
        assert kinds.count("CampaignMessageClicked") == 2
        clicked = [e for e in await outbox(sessions) if isinstance(e, CampaignMessageClicked)]
        assert clicked[0].url == "https://shop.example/spring"
        result = await report(sessions, settings, outgoing.campaign_id)
        assert (result.opened, result.clicked) == (1, 1)


class TestAbandonedCart:
    async def test_a_cart_left_alone_fires_exactly_once(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        journey_id = await new_journey(sessions, trigger="abandoned_cart", delay_minutes=30)
        await deliver(cart("ann"), cart("ann", action="checkout_started"))

        assert await fire(sessions, timedelta(minutes=10)) == 0
        assert await fire(sessions, timedelta(minutes=31)) == 1
        assert await fire(sessions, timedelta(minutes=90)) == 0
        await deliver(cart("ann", action="cart_viewed"))
        assert await fire(sessions, timedelta(minutes=90)) == 0

        [message] = await messages(sessions, journey_id)
        assert message.context["cart"]["cart_id"] == "cart-1"

    async def test_the_reminder_lists_the_carts_items_and_the_last_order(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"), order("ann", "o-1", revenue="35"))
        body = (
            "{% for item in cart.items %}{{ item.name }} x{{ item.quantity }} {% endfor %}"
            "= {{ cart.total }} {{ cart.currency }}; last time: {{ order.total }}"
        )
        await new_journey(
            sessions,
            trigger="abandoned_cart",
            delay_minutes=30,
            variants=[{"name": "A", "subject": "Your {{ cart }}", "body": body}],
        )
        await deliver(cart("ann"))
        assert await fire(sessions, timedelta(minutes=31)) == 1
        async with transaction(sessions) as session:  # the timer fired "31 minutes from now"
            await session.exec(update(Message).values(due_at=utcnow()))  # type: ignore[call-overload]

        [outgoing] = await send(sessions, settings)
        assert outgoing.rendered.subject == "Your 1 item, 90.00 EUR"
        assert outgoing.rendered.text.startswith("Boots x1 = 90.00 EUR; last time: 35.00")

    async def test_an_order_in_time_stops_it_and_opens_a_new_cycle(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))
        journey_id = await new_journey(sessions, trigger="abandoned_cart", delay_minutes=30)
        await deliver(cart("ann"), order("ann", "o-1"))
        assert await fire(sessions, timedelta(minutes=31)) == 0

        await deliver(cart("ann", "cart-2"))
        assert await fire(sessions, timedelta(minutes=31)) == 1
        await deliver(order("ann", "o-2"), cart("ann", "cart-3"))
        assert await fire(sessions, timedelta(minutes=31)) == 1

        assert len(await messages(sessions, journey_id)) == 2

    async def test_a_withdrawn_consent_disarms_the_timer(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        await new_journey(sessions, trigger="abandoned_cart", delay_minutes=30)
        await deliver(cart("ann"))

        await deliver(
            ConsentRevoked(
                customer_id="ann", purpose="marketing", channel="email", source="api", version=2
            )
        )

        assert await fire(sessions, timedelta(minutes=31)) == 0

    async def test_carts_from_before_the_journey_do_not_arm_it(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), cart("ann"))
        await new_journey(sessions, trigger="abandoned_cart", delay_minutes=30)

        assert await fire(sessions, timedelta(minutes=31)) == 0


class TestWelcomeAndReEngagement:
    async def test_a_welcome_goes_once_per_customer(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="welcome", delay_minutes=5)
        await deliver(registered("ann"))
        await deliver(registered("ann"))

        assert await fire(sessions, timedelta(minutes=6)) == 1
        assert await fire(sessions, timedelta(minutes=60)) == 0
        assert [m.customer_id for m in await messages(sessions, journey_id)] == ["ann"]

    async def test_inactivity_fires_and_new_activity_opens_a_new_cycle(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="re_engagement", inactivity_days=30)
        await deliver(registered("ann"))
        await deliver(InteractionTracked(customer_id="ann", kind="page", url="https://x.example"))

        assert await fire(sessions, timedelta(days=29)) == 0
        assert await fire(sessions, timedelta(days=31)) == 1
        assert await fire(sessions, timedelta(days=45)) == 0
        await deliver(InteractionTracked(customer_id="ann", kind="search", search_query="boots"))
        assert await fire(sessions, timedelta(days=31)) == 1

        assert len(await messages(sessions, journey_id)) == 2

    async def test_existing_customers_are_armed_when_the_journey_starts(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"))

        journey_id = await new_journey(sessions, trigger="re_engagement", inactivity_days=10)

        assert await fire(sessions, timedelta(days=9)) == 0
        assert await fire(sessions, timedelta(days=11)) == 1
        assert [m.customer_id for m in await messages(sessions, journey_id)] == ["ann"]

    async def test_a_paused_journey_does_not_fire(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="welcome")
        await deliver(registered("ann"))
        async with transaction(sessions) as session:
            await journey_service.set_journey_active(
                SqlCampaignUnitOfWork(session), journey_id, False
            )

        assert await fire(sessions, timedelta(minutes=1)) == 0


def revoked(customer_id: str, channel: str = "email", version: int = 2) -> ConsentRevoked:
    return ConsentRevoked(
        customer_id=customer_id,
        purpose="marketing",
        channel=channel,  # type: ignore[arg-type]
        source="api",
        version=version,
    )


class TestConsentWithdrawal:
    async def test_no_welcome_after_the_consent_was_revoked(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="welcome", delay_minutes=5)
        await deliver(granted("ann"), revoked("ann"), registered("ann"), registered("bob"))

        assert await fire(sessions, timedelta(minutes=6)) == 1
        assert [m.customer_id for m in await messages(sessions, journey_id)] == ["bob"]

    async def test_a_welcome_armed_before_an_unsubscribe_does_not_fire(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="welcome", delay_minutes=5)
        await deliver(registered("ann"), granted("ann"))
        async with transaction(sessions) as session:
            assert await audience_service.suppress_channel(
                SqlCampaignUnitOfWork(session), "ann", "email"
            )

        assert await fire(sessions, timedelta(minutes=6)) == 0
        assert await messages(sessions, journey_id) == []

    async def test_activity_after_a_revocation_does_not_rearm_re_engagement(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        journey_id = await new_journey(sessions, trigger="re_engagement", inactivity_days=30)
        await deliver(registered("ann"), granted("ann"), revoked("ann"))
        await deliver(InteractionTracked(customer_id="ann", kind="page", url="https://x.example"))
        await deliver(order("ann", "o-1"))

        assert await fire(sessions, timedelta(days=31)) == 0
        assert await messages(sessions, journey_id) == []

        await deliver(granted("ann", version=3))
        await deliver(InteractionTracked(customer_id="ann", kind="search", search_query="boots"))
        assert await fire(sessions, timedelta(days=31)) == 1

    async def test_a_re_engagement_journey_skips_customers_who_withdrew(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"), revoked("ann"), registered("bob"))

        journey_id = await new_journey(sessions, trigger="re_engagement", inactivity_days=10)

        assert await fire(sessions, timedelta(days=11)) == 1
        assert [m.customer_id for m in await messages(sessions, journey_id)] == ["bob"]

    async def test_a_cart_after_a_revocation_does_not_arm_the_reminder(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        journey_id = await new_journey(sessions, trigger="abandoned_cart", delay_minutes=30)
        await deliver(revoked("ann"), cart("ann"))

        assert await fire(sessions, timedelta(minutes=31)) == 0
        assert await messages(sessions, journey_id) == []


class TestErasure:
    async def test_messages_lose_the_person_but_the_report_keeps_its_counts(
        self, sessions: SessionFactory, settings: Settings, deliver: Deliver
    ) -> None:
        await deliver(registered("ann"), granted("ann"))
        campaign_id = await new_campaign(sessions, offer={"prefix": "X"})
        await launch(sessions, campaign_id)
        [outgoing] = await send(sessions, settings)
        await click(sessions, settings, outgoing.message_id)
        await deliver(order("ann", "o-1"))

        await deliver(CustomerErased(customer_id="ann"))

        [message] = await messages(sessions, campaign_id)
        assert (message.customer_id, message.address, message.offer_code) == (None, None, None)
        result = await report(sessions, settings, campaign_id)
        assert (result.sent, result.clicked, result.converted) == (1, 1, 1)
        async with sessions() as session:
            records = await lifecycle.export_customer(SqlCampaignUnitOfWork(session), "ann")
        assert [name for name, rows in records.items() if rows] == ["campaign_tombstones"]

    async def test_stored_audience_lists_lose_the_erased_and_their_merged_ids(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(*(registered(cid) for cid in ("a_n", "dupe", "aXn", "a_nne", "bob")))
        await deliver(CustomerMerged(customer_id="a_n", merged_customer_id="dupe", reason="email"))
        listing = await new_campaign(
            sessions, audience={"customer_ids": ["aXn", "dupe", "a_n", "a_nne", "bob"]}
        )
        other = await new_campaign(sessions, audience={"customer_ids": ["bob"]})

        await deliver(CustomerErased(customer_id="a_n"))

        async with sessions() as session:
            kept = {
                c.id: c.customer_ids
                for c in await campaign_service.list_campaigns(
                    SqlCampaignUnitOfWork(session), "broadcast"
                )
            }
        assert kept == {listing: ["aXn", "a_nne", "bob"], other: ["bob"]}


class TestChannelAnalytics:
    async def test_customers_buyers_and_revenue_per_acquisition_channel(
        self, sessions: SessionFactory, deliver: Deliver
    ) -> None:
        await deliver(
            registered("ann", acquisition_channel="search"),
            registered("bob", acquisition_channel="search"),
            registered("cid", acquisition_channel="referral"),
            registered("dan"),
        )
        orders = [order("ann", "o1", revenue="30"), order("cid", "o2", revenue="70")]
        await deliver(*orders, *(value_after(o) for o in orders))  # buyers: profile's values

        async with sessions() as session:
            result = await reports.channel_analytics(session)

        rows = {
            r.acquisition_channel: (r.customers, r.buyers, r.revenue, r.conversion_rate)
            for r in result.acquisition_channels
        }
        assert rows == {
            "referral": (1, 1, Decimal("70"), 1.0),
            "search": (2, 1, Decimal("30"), 0.5),
            "unknown": (1, 0, Decimal("0"), 0.0),
        }
