"""The broadcasts' use cases against in-memory stores: drafts and their refusals, launching
now or later, who a launch targets, A/B tests held back and decided, cancelling, and the
scheduler's launches and completions. None of them publishes: a broadcast reaches the log
through its messages, as each is sent."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rapport_campaign.audience.models import Alias, ErasedCustomer
from rapport_campaign.campaigns import service
from rapport_campaign.campaigns.models import Campaign, CampaignCreate
from rapport_campaign.errors import Conflict, InvalidRequest, NotFound
from rapport_campaign.messaging.models import Message
from rapport_campaign.segments.models import Segment, SegmentMember
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_campaign.tracking.models import Conversion
from rapport_events.base import utcnow


def content(**fields: Any) -> CampaignCreate:
    values: dict[str, Any] = {
        "name": "Spring sale",
        "channel": "email",
        "variants": [{"name": "A", "subject": "Hi {{ customer.first_name }}", "body": "A"}],
        "audience": {"customer_ids": ["ann"]},
    }
    values.update(fields)
    return CampaignCreate.model_validate(values)


async def a_draft(uow: FakeCampaignUnitOfWork, **fields: Any) -> Campaign:
    return await service.create_campaign(uow, content(**fields))


def a_segment(uow: FakeCampaignUnitOfWork, *members: str) -> str:
    segment = Segment(name="Big spenders", rule={"field": "orders", "op": "gte", "value": 1})
    uow.rows.add(segment)
    uow.rows.extend(SegmentMember(segment_id=segment.id, customer_id=m) for m in members)
    return segment.id


def messages(uow: FakeCampaignUnitOfWork, campaign: Campaign) -> list[Message]:
    return uow.rows.where(Message, lambda message: message.campaign_id == campaign.id)


AB_VARIANTS = [
    {"name": "A", "subject": "A", "body": "a"},
    {"name": "B", "subject": "B", "body": "b"},
]


class TestSavingADraft:
    async def test_it_is_stored_as_a_draft_with_each_customer_once(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(
            uow, audience={"customer_ids": ["ann", "bob", "ann"]}, offer={"prefix": "spring"}
        )

        assert uow.rows.get(Campaign, campaign.id) is campaign
        assert (campaign.kind, campaign.status) == ("broadcast", "draft")
        assert campaign.customer_ids == ["ann", "bob"]
        assert campaign.offer_prefix == "spring"
        assert uow.flushes == 1
        assert uow.outbox.events == []

    async def test_its_schedule_is_kept_in_utc(self, uow: FakeCampaignUnitOfWork) -> None:
        paris = timezone(timedelta(hours=2))

        campaign = await a_draft(uow, schedule_at=datetime(2030, 5, 1, 11, tzinfo=paris))

        assert campaign.scheduled_at == datetime(2030, 5, 1, 9, tzinfo=UTC)
        assert campaign.scheduled_at.tzinfo == UTC
        assert campaign.status == "draft"

    async def test_a_known_segment_is_its_audience(self, uow: FakeCampaignUnitOfWork) -> None:
        segment_id = a_segment(uow)

        campaign = await a_draft(uow, audience={"segment_id": segment_id})

        assert (campaign.segment_id, campaign.customer_ids) == (segment_id, None)

    async def test_an_unknown_segment_is_refused_and_nothing_is_stored(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        with pytest.raises(InvalidRequest, match="no segment seg_gone"):
            await a_draft(uow, audience={"segment_id": "seg_gone"})

        assert uow.rows.all(Campaign) == []

    async def test_a_template_that_does_not_render_is_refused(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        broken = [{"name": "A", "subject": "Hi", "body": "{% if %}"}]

        with pytest.raises(InvalidRequest, match="template error in variant"):
            await a_draft(uow, variants=broken)

        assert uow.rows.all(Campaign) == []


class TestReadingCampaigns:
    async def test_one_of_another_kind_is_not_found(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow)

        with pytest.raises(NotFound, match=f"no journey {campaign.id}"):
            await service.get_campaign(uow, campaign.id, "journey")
        assert await service.get_campaign(uow, campaign.id, "broadcast") is campaign
        assert await service.get_campaign(uow, campaign.id) is campaign

    async def test_they_are_listed_by_kind_oldest_first(self, uow: FakeCampaignUnitOfWork) -> None:
        now = utcnow()
        newer = Campaign(name="Newer", channel="sms", variants=[], created_at=now)
        older = Campaign(name="Older", channel="sms", variants=[], created_at=now - timedelta(1))
        journey = Campaign(kind="journey", name="J", channel="sms", variants=[])
        uow.rows.extend([newer, older, journey])

        assert await service.list_campaigns(uow, "broadcast") == [older, newer]
        assert await service.list_campaigns(uow, "journey") == [journey]


class TestLaunchingNow:
    async def test_each_recipient_gets_one_pending_message(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(uow, audience={"customer_ids": ["ann", "bob"]})

        launched = await service.launch_campaign(uow, campaign.id, None)

        assert launched is campaign
        assert (campaign.status, campaign.launched_at is not None) == ("sending", True)
        sent = messages(uow, campaign)
        assert sorted(m.customer_id for m in sent if m.customer_id) == ["ann", "bob"]
        assert {(m.status, m.variant, m.channel) for m in sent} == {("pending", "A", "email")}
        assert uow.outbox.events == []

    async def test_merged_ids_go_to_the_survivor_once_and_erased_ones_to_no_one(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(Alias(merged_id="ann-old", customer_id="ann"))
        uow.rows.add(ErasedCustomer(customer_id="eve", erased_at=utcnow()))
        campaign = await a_draft(uow, audience={"customer_ids": ["ann-old", "ann", "eve"]})

        await service.launch_campaign(uow, campaign.id, None)

        assert [m.customer_id for m in messages(uow, campaign)] == ["ann"]

    async def test_a_segment_campaign_goes_to_its_members(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(uow, audience={"segment_id": a_segment(uow, "ann", "cy")})

        await service.launch_campaign(uow, campaign.id, None)

        assert sorted(m.customer_id or "" for m in messages(uow, campaign)) == ["ann", "cy"]

    async def test_an_empty_audience_is_sent_at_once(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow, audience={"segment_id": a_segment(uow)})

        await service.launch_campaign(uow, campaign.id, None)

        assert campaign.status == "sent"
        assert campaign.completed_at == campaign.launched_at
        assert messages(uow, campaign) == []

    async def test_every_recipient_gets_an_offer_code_of_their_own(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        people = [f"c{n}" for n in range(20)]
        campaign = await a_draft(uow, audience={"customer_ids": people}, offer={"prefix": "vip"})

        await service.launch_campaign(uow, campaign.id, None)

        codes = [m.offer_code or "" for m in messages(uow, campaign)]
        assert len(set(codes)) == 20
        assert all(code.startswith("VIP-") and len(code) == 14 for code in codes)

    async def test_variants_are_shared_out_by_weight(self, uow: FakeCampaignUnitOfWork) -> None:
        variants = [{**AB_VARIANTS[0], "weight": 3}, AB_VARIANTS[1]]
        people = [f"c{n}" for n in range(40)]
        campaign = await a_draft(uow, variants=variants, audience={"customer_ids": people})

        await service.launch_campaign(uow, campaign.id, None)

        got = [m.variant for m in messages(uow, campaign)]
        assert (got.count("A"), got.count("B")) == (30, 10)


class TestLaunchingLater:
    async def test_a_future_time_schedules_it_and_sends_nothing_yet(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(uow)
        at = utcnow() + timedelta(hours=2)

        await service.launch_campaign(uow, campaign.id, at)

        assert (campaign.status, campaign.scheduled_at) == ("scheduled", at)
        assert messages(uow, campaign) == []

    async def test_its_own_future_schedule_is_used_when_no_time_is_given(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        at = utcnow() + timedelta(days=1)
        campaign = await a_draft(uow, schedule_at=at)

        await service.launch_campaign(uow, campaign.id, None)

        assert (campaign.status, campaign.scheduled_at) == ("scheduled", at)

    async def test_a_time_already_past_sends_now(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow)

        await service.launch_campaign(uow, campaign.id, utcnow() - timedelta(minutes=5))

        assert campaign.status == "sending"
        assert len(messages(uow, campaign)) == 1

    async def test_a_scheduled_campaign_may_be_launched_now_by_hand(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(uow)
        await service.launch_campaign(uow, campaign.id, utcnow() + timedelta(hours=1))

        await service.launch_campaign(uow, campaign.id, utcnow())

        assert campaign.status == "sending"


class TestWhatCannotBeLaunched:
    async def test_a_campaign_already_sending(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow)
        await service.launch_campaign(uow, campaign.id, None)

        with pytest.raises(Conflict, match="is sending; only a draft is launched"):
            await service.launch_campaign(uow, campaign.id, None)
        assert len(messages(uow, campaign)) == 1

    async def test_an_unknown_campaign_or_a_journey(self, uow: FakeCampaignUnitOfWork) -> None:
        journey = Campaign(kind="journey", name="Welcome", channel="email", variants=[])
        uow.rows.add(journey)

        for campaign_id in ("cmp_unknown", journey.id):
            with pytest.raises(NotFound, match=f"no campaign {campaign_id}"):
                await service.launch_campaign(uow, campaign_id, None)
        assert uow.rows.all(Message) == []


class TestAnABTest:
    async def test_the_test_share_gets_the_variants_and_the_rest_is_held(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        people = [f"c{n}" for n in range(10)]
        campaign = await a_draft(
            uow,
            variants=AB_VARIANTS,
            audience={"customer_ids": people},
            ab_test={"test_fraction": 0.4, "decide_after_minutes": 60},
        )

        await service.launch_campaign(uow, campaign.id, None)

        sent = messages(uow, campaign)
        tested = [m for m in sent if m.status == "pending"]
        assert sorted(m.variant or "" for m in tested) == ["A", "A", "B", "B"]
        assert {(m.status, m.variant) for m in sent if m not in tested} == {("held", None)}
        assert campaign.launched_at is not None and campaign.decide_at is not None
        assert campaign.decide_at - campaign.launched_at == timedelta(minutes=60)

    async def test_the_test_share_has_at_least_one_recipient_per_variant(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        people = [f"c{n}" for n in range(10)]
        campaign = await a_draft(
            uow,
            variants=AB_VARIANTS,
            audience={"customer_ids": people},
            ab_test={"test_fraction": 0.01, "decide_after_minutes": 60},
        )

        await service.launch_campaign(uow, campaign.id, None)

        assert [m.status for m in messages(uow, campaign)].count("pending") == 2

    async def test_the_winner_converts_best_and_the_held_messages_go_out_with_it(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        people = [f"c{n}" for n in range(8)]
        campaign = await a_draft(
            uow,
            variants=AB_VARIANTS,
            audience={"customer_ids": people},
            ab_test={"test_fraction": 0.5, "decide_after_minutes": 60},
        )
        await service.launch_campaign(uow, campaign.id, None)
        now = utcnow()
        tested = [m for m in messages(uow, campaign) if m.status == "pending"]
        for message in tested:
            message.status, message.sent_at = "sent", now
            if message.variant == "A":
                message.clicked_at = now  # A is clicked more; B converts: B wins
        b = next(m for m in tested if m.variant == "B")
        uow.rows.add(a_conversion(b, now))

        assert await service.decide_winners(uow, now) == 0  # not before its time
        decided = await service.decide_winners(uow, now + timedelta(minutes=61))

        assert (decided, campaign.winner) == (1, "B")
        released = [m for m in messages(uow, campaign) if m not in tested]
        assert {(m.status, m.variant) for m in released} == {("pending", "B")}
        assert await service.decide_winners(uow, now + timedelta(minutes=62)) == 0

    def test_ties_go_to_clicks_then_to_the_first_variant_listed(self) -> None:
        assert service.best_variant(["A", "B"], {"A": (10, 1, 1), "B": (10, 5, 1)}) == "B"
        assert service.best_variant(["A", "B"], {"A": (10, 5, 1), "B": (10, 5, 1)}) == "A"
        assert service.best_variant(["A", "B"], {}) == "A"


def a_conversion(message: Message, at: datetime) -> Conversion:
    return Conversion(
        message_id=message.id,
        campaign_id=message.campaign_id,
        customer_id=message.customer_id,
        variant=message.variant,
        model="last_touch",
        touch="click",
        occurred_at=at,
    )


class TestCancelling:
    async def test_messages_not_yet_sent_are_cancelled(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow, audience={"customer_ids": ["ann", "bob"]})
        await service.launch_campaign(uow, campaign.id, None)
        ann, bob = sorted(messages(uow, campaign), key=lambda m: m.customer_id or "")
        ann.status = "sent"

        await service.cancel_campaign(uow, campaign.id)

        assert (campaign.status, campaign.completed_at is not None) == ("cancelled", True)
        assert (ann.status, bob.status, bob.reason) == ("sent", "cancelled", "campaign cancelled")

    async def test_a_draft_may_be_cancelled(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow)

        await service.cancel_campaign(uow, campaign.id)

        assert campaign.status == "cancelled"

    async def test_a_finished_campaign_cannot_be(self, uow: FakeCampaignUnitOfWork) -> None:
        campaign = await a_draft(uow)
        await service.cancel_campaign(uow, campaign.id)

        with pytest.raises(Conflict, match="is already cancelled"):
            await service.cancel_campaign(uow, campaign.id)
        with pytest.raises(NotFound):
            await service.cancel_campaign(uow, "cmp_unknown")


class TestTheScheduler:
    async def test_it_launches_the_campaigns_whose_time_has_come(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        now = utcnow()
        soon = await a_draft(uow, audience={"customer_ids": ["ann"]})
        later = await a_draft(uow, audience={"customer_ids": ["bob"]})
        await service.launch_campaign(uow, soon.id, now + timedelta(minutes=5))
        await service.launch_campaign(uow, later.id, now + timedelta(hours=5))

        assert await service.launch_due(uow, now + timedelta(minutes=10)) == 1

        assert (soon.status, later.status) == ("sending", "scheduled")
        assert soon.launched_at == now + timedelta(minutes=10)
        assert [m.customer_id for m in uow.rows.all(Message)] == ["ann"]

    async def test_it_completes_a_campaign_once_no_message_is_left_to_send(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        campaign = await a_draft(uow, audience={"customer_ids": ["ann", "bob"]})
        await service.launch_campaign(uow, campaign.id, None)
        ann, bob = messages(uow, campaign)
        ann.status = "sent"
        now = utcnow()

        assert await service.complete_finished(uow, now) == 0
        bob.status = "suppressed"
        assert await service.complete_finished(uow, now) == 1

        assert (campaign.status, campaign.completed_at) == ("sent", now)
