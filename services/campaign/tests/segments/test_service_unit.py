"""The segments' use cases against in-memory stores: rules checked before anything is saved,
what a segment depends on, members entering and exiting as a recompute or an event finds them
and the events each change publishes, deleting, reading and paging. Who a rule matches is the
database's to say (`test_service.py` runs it on both): here the test says it."""

from datetime import timedelta
from typing import Any

import pytest

from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.errors import Conflict, InvalidRequest, NotFound
from rapport_campaign.segments import rules, service
from rapport_campaign.segments.models import Segment, SegmentCreate, SegmentMember, SegmentUpdate
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.types import SegmentEntered, SegmentExited

FRENCH = {"attribute": "country", "op": "eq", "value": "FR"}
RECENT_BUYERS = {"event": "order.completed", "at_least": 1, "within_days": 30}


async def a_segment(
    uow: FakeCampaignUnitOfWork, rule: dict[str, Any], *members: str, name: str = "French"
) -> Segment:
    uow.segments.matches(rule, *members)
    segment, _ = await service.create_segment(
        uow, SegmentCreate.model_validate({"name": name, "rule": rule})
    )
    return segment


def changes(uow: FakeCampaignUnitOfWork) -> list[tuple[str, str, str]]:
    return [
        (type(event).__name__, event.segment_id, event.customer_id)
        for event in uow.outbox.events
        if isinstance(event, SegmentEntered | SegmentExited)
    ]


class TestCreatingASegment:
    async def test_whom_the_rule_matches_enter_and_each_entry_is_published(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.segments.matches(FRENCH, "cy", "ann")

        segment, count = await service.create_segment(
            uow, SegmentCreate.model_validate({"name": "French", "rule": FRENCH})
        )

        assert count == 2
        assert uow.rows.get(Segment, segment.id) is segment
        assert await uow.segments.member_ids(segment.id) == {"ann", "cy"}
        assert changes(uow) == [
            ("SegmentEntered", segment.id, "ann"),
            ("SegmentEntered", segment.id, "cy"),
        ]
        assert {e.segment_name for e in uow.outbox.published(SegmentEntered)} == {"French"}

    async def test_what_it_depends_on_is_kept_with_the_rule(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = await a_segment(uow, RECENT_BUYERS)

        assert segment.rule == rules.dump(rules.parse(RECENT_BUYERS))
        assert (segment.relevance, segment.time_dependent) == (["order"], True)
        # Left for the scheduler's first refresh, which catches what ran beside the creation.
        assert segment.refreshed_at is None
        assert uow.segments.locks == 1

    async def test_a_segment_built_on_others_depends_on_theirs_too(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        french = await a_segment(uow, FRENCH)
        buyers = await a_segment(uow, {"all": [{"segment": french.id}, RECENT_BUYERS]})

        top = await a_segment(uow, {"not": {"segment": buyers.id}}, name="Others")

        assert buyers.depends_on == [french.id]
        assert sorted(top.depends_on) == sorted([french.id, buyers.id])
        assert (set(top.relevance), top.time_dependent) == ({"order", "profile"}, True)

    async def test_a_rule_naming_an_unknown_segment_is_refused_before_anything_is_saved(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        with pytest.raises(InvalidRequest, match="unknown segments: seg_a, seg_b"):
            await a_segment(uow, {"any": [{"segment": "seg_b"}, {"segment": "seg_a"}]})

        assert uow.rows.all(Segment) == []
        assert uow.outbox.events == []

    async def test_a_rule_too_big_or_too_deep_is_refused(self, uow: FakeCampaignUnitOfWork) -> None:
        hundred = {"any": [FRENCH] * 100}  # as many as one list holds
        too_big = rules.parse({"all": [hundred, hundred]})
        deep: dict[str, Any] = FRENCH
        for _ in range(rules.MAX_DEPTH):
            deep = {"not": deep}

        with pytest.raises(InvalidRequest, match=f"at most {rules.MAX_NODES}"):
            await service.preview_segment(uow, too_big)
        with pytest.raises(InvalidRequest, match=f"deeper than {rules.MAX_DEPTH} levels"):
            await service.preview_segment(uow, rules.parse(deep))


class TestRecomputing:
    async def test_newcomers_enter_and_leavers_exit_and_both_are_published(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = await a_segment(uow, FRENCH, "ann", "bob")
        uow.outbox.events.clear()
        uow.segments.matches(FRENCH, "bob", "dan", "cy")
        later = utcnow() + timedelta(days=1)

        count = await service.recompute_segment(uow, segment, now=later)

        assert count == 3
        assert await uow.segments.member_ids(segment.id) == {"bob", "cy", "dan"}
        assert changes(uow) == [
            ("SegmentEntered", segment.id, "cy"),
            ("SegmentEntered", segment.id, "dan"),
            ("SegmentExited", segment.id, "ann"),
        ]
        assert segment.refreshed_at == later
        entered = uow.rows.get(SegmentMember, segment.id, "cy")
        assert entered is not None and entered.entered_at == later

    async def test_no_change_publishes_nothing(self, uow: FakeCampaignUnitOfWork) -> None:
        segment = await a_segment(uow, FRENCH, "ann")
        uow.outbox.events.clear()

        assert await service.recompute_segment(uow, segment) == 1

        assert uow.outbox.events == []


class TestReevaluatingAsEventsArrive:
    async def test_each_customer_enters_and_exits_once_in_the_order_given(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        french = await a_segment(uow, FRENCH, "ann", "bob")
        buyers = await a_segment(uow, RECENT_BUYERS, "bob", name="Buyers")
        uow.outbox.events.clear()
        uow.segments.matches(FRENCH, "bob", "cy")
        uow.segments.matches(RECENT_BUYERS, "ann", "bob")
        at = utcnow() + timedelta(hours=1)

        results = await service.reevaluate_many(uow, ["cy", "ann", "cy", "bob"], None, now=at)

        assert changes(uow) == [
            ("SegmentEntered", french.id, "cy"),
            ("SegmentExited", french.id, "ann"),
            ("SegmentEntered", buyers.id, "ann"),
        ]
        assert results == {
            "cy": {french.id: True, buyers.id: False},
            "ann": {french.id: False, buyers.id: True},
            "bob": {french.id: True, buyers.id: True},
        }
        assert await uow.segments.member_ids(french.id) == {"bob", "cy"}
        assert await uow.segments.member_ids(buyers.id) == {"ann", "bob"}
        entered = uow.rows.get(SegmentMember, french.id, "cy")
        assert entered is not None and entered.entered_at == at

    async def test_only_segments_reading_the_events_kind_are_tested(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        french = await a_segment(uow, FRENCH)
        buyers = await a_segment(uow, RECENT_BUYERS, name="Buyers")
        uow.segments.matches(FRENCH, "ann")
        uow.segments.matches(RECENT_BUYERS, "ann")

        assert await service.reevaluate(uow, "ann", {"order"}) == {buyers.id: True}

        assert await uow.segments.memberships_of("ann") == {buyers.id}
        assert french.id not in await uow.segments.memberships_of("ann")

    async def test_an_event_no_segment_reads_locks_and_publishes_nothing(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        await a_segment(uow, FRENCH)
        uow.segments.matches(FRENCH, "ann")
        locks, published = uow.segments.locks, len(uow.outbox.events)

        assert await service.reevaluate_many(uow, ["ann"], {"survey"}) == {}
        assert await service.reevaluate_many(uow, [], None) == {}

        assert (uow.segments.locks, len(uow.outbox.events)) == (locks, published)

    async def test_a_change_takes_the_membership_lock(self, uow: FakeCampaignUnitOfWork) -> None:
        await a_segment(uow, FRENCH)
        locks = uow.segments.locks

        await service.reevaluate(uow, "ann", {"profile"})

        assert uow.segments.locks == locks + 1


class TestSegmentsToRefresh:
    async def test_new_ones_and_clock_dependent_ones_past_their_interval(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        now = utcnow()
        french = await a_segment(uow, FRENCH)
        buyers = await a_segment(uow, RECENT_BUYERS, name="Buyers")
        fresh = await a_segment(uow, RECENT_BUYERS, name="Fresh buyers")
        unseen = await a_segment(uow, FRENCH, name="Unseen")
        french.refreshed_at = now - timedelta(days=9)
        buyers.refreshed_at = now - timedelta(hours=2)
        fresh.refreshed_at = now

        due = await uow.segments.segments_to_refresh(now - timedelta(hours=1))

        assert [s.id for s in due] == [buyers.id, unseen.id]


class TestPreviewing:
    async def test_it_counts_and_samples_without_saving_or_publishing(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.segments.matches(RECENT_BUYERS, *(f"c{n:02}" for n in range(15)))

        count, sample, timed = await service.preview_segment(uow, rules.parse(RECENT_BUYERS))

        assert (count, timed) == (15, True)
        assert sample == [f"c{n:02}" for n in range(10)]
        assert uow.rows.all(Segment) == [] and uow.outbox.events == []


class TestDeleting:
    async def test_its_members_exit_and_it_is_gone(self, uow: FakeCampaignUnitOfWork) -> None:
        segment = await a_segment(uow, FRENCH, "bob", "ann")
        uow.outbox.events.clear()

        await service.delete_segment(uow, segment.id)

        assert changes(uow) == [
            ("SegmentExited", segment.id, "ann"),
            ("SegmentExited", segment.id, "bob"),
        ]
        assert uow.rows.all(Segment) == [] and uow.rows.all(SegmentMember) == []
        with pytest.raises(NotFound, match=f"no segment {segment.id}"):
            await service.delete_segment(uow, segment.id)

    async def test_one_another_segment_uses_is_kept(self, uow: FakeCampaignUnitOfWork) -> None:
        french = await a_segment(uow, FRENCH, "ann")
        user = await a_segment(uow, {"segment": french.id}, name="Built on it")
        uow.outbox.events.clear()

        with pytest.raises(Conflict, match=f"segments {user.id} use this segment"):
            await service.delete_segment(uow, french.id)

        assert uow.rows.get(Segment, french.id) is french
        assert uow.outbox.events == []

    async def test_one_a_campaign_still_to_send_targets_is_kept(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = await a_segment(uow, FRENCH, "ann")
        draft = Campaign(name="Spring", channel="email", variants=[], segment_id=segment.id)
        sent = Campaign(
            name="Winter", channel="email", variants=[], segment_id=segment.id, status="sent"
        )
        uow.rows.extend([draft, sent])

        with pytest.raises(Conflict, match=f"campaigns {draft.id} target this segment"):
            await service.delete_segment(uow, segment.id)
        draft.status = "cancelled"
        await service.delete_segment(uow, segment.id)

        assert uow.rows.all(Segment) == []


class TestReading:
    async def test_one_segment_and_every_segment_with_their_counts(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        french = await a_segment(uow, FRENCH, "ann", "bob")
        empty = await a_segment(uow, RECENT_BUYERS, name="Buyers")

        assert await service.get_segment(uow, french.id) == (french, 2)
        assert await service.list_segments(uow) == [(french, 2), (empty, 0)]
        with pytest.raises(NotFound, match="no segment seg_gone"):
            await service.get_segment(uow, "seg_gone")

    async def test_a_name_and_description_change_but_a_missing_name_is_kept(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = await a_segment(uow, FRENCH, "ann")

        await service.update_segment(uow, segment.id, SegmentUpdate(description="from France"))
        renamed, count = await service.update_segment(
            uow, segment.id, SegmentUpdate.model_validate({"name": None, "description": None})
        )

        assert (renamed.name, renamed.description, count) == ("French", None, 1)
        await service.update_segment(uow, segment.id, SegmentUpdate(name="France"))
        assert segment.name == "France"

    async def test_members_come_in_pages_by_id(self, uow: FakeCampaignUnitOfWork) -> None:
        segment = await a_segment(uow, FRENCH, "eve", "ann", "dan", "bob", "cy")

        seen, cursor, pages = [], None, 0
        while True:
            total, page, cursor = await service.member_page(uow, segment.id, cursor=cursor, limit=2)
            seen += [member.customer_id for member in page]
            pages += 1
            if cursor is None:
                break

        assert (total, pages, seen) == (5, 3, ["ann", "bob", "cy", "dan", "eve"])
        with pytest.raises(NotFound):
            await service.member_page(uow, "seg_gone", cursor=None, limit=2)
