"""The journeys' use cases against in-memory stores: saving one, the re-engagement clock
started for everyone known, pausing, and due timers fired as messages (once per cycle,
not for a paused journey or a withdrawn consent)."""

from datetime import datetime, timedelta
from typing import Any

import pytest

from rapport_campaign.audience.models import AudienceMember, ConsentState
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.errors import InvalidRequest, NotFound
from rapport_campaign.journeys import service
from rapport_campaign.journeys.models import JourneyCreate, JourneyState
from rapport_campaign.messaging.models import Message
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_events.base import utcnow


def journey_of(trigger: str = "welcome", **fields: Any) -> JourneyCreate:
    values: dict[str, Any] = {
        "name": "Welcome",
        "channel": "email",
        "trigger": trigger,
        "variants": [
            {"name": "A", "subject": "Welcome", "body": "a"},
            {"name": "B", "subject": "Hello", "body": "b"},
        ],
    }
    values.update(fields)
    return JourneyCreate.model_validate(values)


async def a_journey(
    uow: FakeCampaignUnitOfWork, trigger: str = "welcome", **fields: Any
) -> Campaign:
    return await service.create_journey(uow, journey_of(trigger, **fields))


def a_member(uow: FakeCampaignUnitOfWork, customer_id: str, last_active: datetime | None) -> None:
    uow.rows.add(
        AudienceMember(
            customer_id=customer_id,
            email=f"{customer_id}@example.com",
            first_name=customer_id,
            last_name="Lovelace",
            registered_at=utcnow() - timedelta(days=400),
            last_active_at=last_active,
        )
    )


def a_timer(
    uow: FakeCampaignUnitOfWork,
    journey: Campaign,
    customer_id: str,
    due_at: datetime,
    **fields: Any,
) -> JourneyState:
    state = JourneyState(journey_id=journey.id, customer_id=customer_id, due_at=due_at, **fields)
    uow.rows.add(state)
    return state


def revoked(uow: FakeCampaignUnitOfWork, customer_id: str, channel: str = "email") -> None:
    uow.rows.add(ConsentState(customer_id=customer_id, channel=channel, granted=False, version=2))


class TestSavingAJourney:
    async def test_it_is_active_with_its_trigger_settings(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow, delay_minutes=30, offer={"prefix": "hello"})

        assert uow.rows.get(Campaign, journey.id) is journey
        assert (journey.kind, journey.status, journey.active) == ("journey", "active", True)
        assert (journey.trigger, journey.trigger_config) == ("welcome", {"delay_minutes": 30})
        assert journey.offer_prefix == "hello"
        assert uow.flushes == 1
        assert uow.outbox.events == []

    async def test_one_saved_inactive_is_paused(self, uow: FakeCampaignUnitOfWork) -> None:
        journey = await a_journey(uow, active=False)

        assert (journey.status, journey.active) == ("paused", False)

    async def test_a_template_that_does_not_render_is_refused(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        with pytest.raises(InvalidRequest, match="template error"):
            await a_journey(uow, variants=[{"name": "A", "subject": "Hi", "body": "{{ x"}])

        assert uow.rows.all(Campaign) == []


class TestTheReEngagementClock:
    async def test_everyone_known_is_armed_from_their_last_activity_or_from_now(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        ann_active = utcnow() + timedelta(days=1)
        a_member(uow, "ann", ann_active)
        a_member(uow, "bob", utcnow() - timedelta(days=100))
        a_member(uow, "cy", None)

        journey = await a_journey(uow, "re_engagement", inactivity_days=30)

        timers = {s.customer_id: s for s in uow.rows.all(JourneyState)}
        created = journey.created_at
        assert timers["ann"].due_at == ann_active + timedelta(days=30)
        # Inactive since long before the journey: the clock starts when it was made.
        assert timers["bob"].due_at == timers["cy"].due_at == created + timedelta(days=30)
        assert {(s.journey_id, s.cycle, s.fired_cycle) for s in timers.values()} == {
            (journey.id, 1, 0)
        }

    async def test_who_withdrew_marketing_on_the_channel_is_not_armed(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_member(uow, "ann", None)
        a_member(uow, "bob", None)
        revoked(uow, "bob")
        revoked(uow, "ann", channel="sms")

        await a_journey(uow, "re_engagement", inactivity_days=30)

        assert [s.customer_id for s in uow.rows.all(JourneyState)] == ["ann"]

    async def test_other_triggers_arm_no_one_when_saved(self, uow: FakeCampaignUnitOfWork) -> None:
        a_member(uow, "ann", None)

        await a_journey(uow, "abandoned_cart", delay_minutes=60)

        assert uow.rows.all(JourneyState) == []


class TestPausing:
    async def test_a_journey_is_paused_and_resumed(self, uow: FakeCampaignUnitOfWork) -> None:
        journey = await a_journey(uow)

        await service.set_journey_active(uow, journey.id, False)
        assert (journey.status, journey.active) == ("paused", False)
        await service.set_journey_active(uow, journey.id, True)
        assert (journey.status, journey.active) == ("active", True)

    async def test_a_broadcast_is_not_a_journey(self, uow: FakeCampaignUnitOfWork) -> None:
        broadcast = Campaign(name="Spring", channel="email", variants=[])
        uow.rows.add(broadcast)

        with pytest.raises(NotFound, match=f"no journey {broadcast.id}"):
            await service.set_journey_active(uow, broadcast.id, False)
        assert broadcast.active is True


class TestFiringDueTimers:
    async def test_a_due_timer_becomes_one_message_and_is_spent(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow, offer={"prefix": "hi"})
        now = utcnow()
        cart = {"cart": {"cart_id": "c1", "value": "20.00"}}
        timer = a_timer(uow, journey, "ann", now - timedelta(minutes=1), cycle=2, context=cart)

        assert await service.fire_due_journeys(uow, now) == 1

        [message] = uow.rows.all(Message)
        assert (message.campaign_id, message.customer_id, message.channel) == (
            journey.id,
            "ann",
            "email",
        )
        assert message.variant in ("A", "B")
        assert (message.offer_code or "").startswith("HI-")
        assert message.context == {**cart, "cycle": 2}
        assert (message.due_at, message.status) == (now, "pending")
        assert (timer.due_at, timer.fired_cycle) == (None, 2)
        assert await service.fire_due_journeys(uow, now) == 0

    async def test_timers_not_due_yet_wait(self, uow: FakeCampaignUnitOfWork) -> None:
        journey = await a_journey(uow)
        now = utcnow()
        later = a_timer(uow, journey, "ann", now + timedelta(seconds=1))

        assert await service.fire_due_journeys(uow, now) == 0

        assert later.due_at == now + timedelta(seconds=1)
        assert uow.rows.all(Message) == []

    async def test_a_customer_lands_in_the_same_variant_every_time(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow)
        now = utcnow()
        variants = []
        for cycle in (1, 2):
            a_timer(uow, journey, "ann", now, cycle=cycle, fired_cycle=cycle - 1)
            await service.fire_due_journeys(uow, now)
            variants.append(uow.rows.all(Message)[-1].variant)

        assert variants[0] == variants[1]

    async def test_a_paused_journeys_timer_is_spent_without_a_message(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow, active=False)
        timer = a_timer(uow, journey, "ann", utcnow())

        assert await service.fire_due_journeys(uow, utcnow()) == 0

        assert (timer.due_at, timer.fired_cycle) == (None, 1)
        assert uow.rows.all(Message) == []

    async def test_a_withdrawn_consent_spends_the_cycle_without_a_message(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow)
        timer = a_timer(uow, journey, "ann", utcnow())
        revoked(uow, "ann")
        a_timer(uow, journey, "bob", utcnow())
        uow.rows.add(ConsentState(customer_id="bob", channel="email", granted=True, version=1))

        assert await service.fire_due_journeys(uow, utcnow()) == 1

        assert [m.customer_id for m in uow.rows.all(Message)] == ["bob"]
        assert (timer.due_at, timer.fired_cycle) == (None, 1)

    async def test_at_most_the_limit_fire_the_earliest_first(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        journey = await a_journey(uow)
        now = utcnow()
        for minutes, customer_id in ((3, "cy"), (1, "ann"), (2, "bob")):
            a_timer(uow, journey, customer_id, now - timedelta(minutes=minutes))

        assert await service.fire_due_journeys(uow, now, limit=2) == 2

        assert [m.customer_id for m in uow.rows.all(Message)] == ["cy", "bob"]
        assert await service.fire_due_journeys(uow, now, limit=2) == 1
