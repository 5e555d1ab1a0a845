"""A merge, an erasure and the export across campaign's domains, against in-memory stores:
merged, the duplicate's audience row, activity, messages and touches move to the survivor,
its segments publish their exits, its timers and consents go (an unsubscribe still
suppresses the survivor) and the survivor is tested against every segment; erased,
nothing about the customer or the ids merged into them stays but the tombstones, their
messages and touches stay anonymous, and their sent events are taken back; exported,
every domain's rows about the customer and nobody else's."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rapport_campaign import lifecycle
from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
    ErasedCustomer,
)
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.messaging.models import Message
from rapport_campaign.segments.models import Segment, SegmentMember
from rapport_campaign.testing import FakeCampaignUnitOfWork
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_events.types import CustomerErased, CustomerMerged, SegmentExited

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
LATER = datetime(2025, 3, 1, tzinfo=UTC)
VARIANTS = [{"name": "A", "subject": "Hi", "body": "a"}]
# Every table that names a customer, with what a row of it is called in the export.
ABOUT: dict[str, type[Any]] = {
    "campaign_audience": AudienceMember,
    "campaign_consents": ConsentState,
    "campaign_activity": Activity,
    "campaign_activity_items": ActivityItem,
    "campaign_segment_members": SegmentMember,
    "campaign_messages": Message,
    "campaign_clicks": Click,
    "campaign_conversions": Conversion,
    "campaign_journey_states": JourneyState,
    "campaign_unsubscribes": Unsubscribe,
    "campaign_aliases": Alias,
}


def a_customer(uow: FakeCampaignUnitOfWork, customer_id: str, segment: Segment) -> Campaign:
    """The customer with a row in every domain: audience, a consent, an order and its line,
    a loyalty event, a membership, a message with a click and a conversion, a journey's
    timer and an unsubscribe; the broadcast that sent the message."""
    uow.rows.add(AudienceMember(customer_id=customer_id, acquisition_channel="ads"))
    uow.rows.add(ConsentState(customer_id=customer_id, channel="email", granted=True, version=2))
    order = Activity(
        event_id=f"ev-{customer_id}",
        customer_id=customer_id,
        event_type="order.completed",
        ref=f"o-{customer_id}",
        value=Decimal("20"),
        occurred_at=LATER,
    )
    uow.rows.add(order)
    assert order.id is not None
    uow.rows.add(ActivityItem(activity_id=order.id, customer_id=customer_id, product_id="p1"))
    uow.rows.add(
        Activity(
            event_id=f"pts-{customer_id}",
            customer_id=customer_id,
            event_type="loyalty.points.earned",
            value=Decimal("15"),
            balance=40,
            occurred_at=SINCE,
        )
    )
    uow.rows.add(SegmentMember(segment_id=segment.id, customer_id=customer_id, entered_at=SINCE))
    broadcast = Campaign(name="Spring", channel="email", variants=VARIANTS)
    uow.rows.add(broadcast)
    message = Message(
        campaign_id=broadcast.id,
        customer_id=customer_id,
        channel="email",
        status="sent",
        address=f"{customer_id}@example.com",
        offer_code=f"OFF-{customer_id}",
        context={"first_name": customer_id.title()},
    )
    uow.rows.add(message)
    uow.rows.add(
        Click(
            message_id=message.id,
            campaign_id=broadcast.id,
            customer_id=customer_id,
            url="https://shop.example/",
        )
    )
    uow.rows.add(
        Conversion(
            order_key=f"k-{customer_id}",
            order_id=f"o-{customer_id}",
            message_id=message.id,
            campaign_id=broadcast.id,
            customer_id=customer_id,
            model="last_touch",
            touch="click",
            occurred_at=LATER,
        )
    )
    uow.rows.add(JourneyState(journey_id="welcome", customer_id=customer_id, due_at=LATER))
    uow.rows.add(Unsubscribe(customer_id=customer_id, channel="sms"))
    return broadcast


def a_segment(uow: FakeCampaignUnitOfWork, name: str = "Buyers") -> Segment:
    segment = Segment(name=name, rule={"event": "order.completed"})
    uow.rows.add(segment)
    return segment


def about(uow: FakeCampaignUnitOfWork, customer_id: str) -> dict[str, int]:
    """How many rows of each table name the customer (a tombstone aside)."""
    found: dict[str, int] = {}
    for table, model in ABOUT.items():
        rows = uow.rows.where(model, lambda row: row.customer_id == customer_id)
        if rows:
            found[table] = len(rows)
    return found


def merged(survivor: str = "keep", duplicate: str = "dupe") -> CustomerMerged:
    return CustomerMerged(customer_id=survivor, merged_customer_id=duplicate, reason="email")


class TestMerge:
    async def test_every_domain_s_rows_move_to_the_survivor(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = a_segment(uow)
        a_customer(uow, "dupe", segment)

        await lifecycle.merge(uow, merged())

        assert about(uow, "dupe") == {}
        # Consents are profile's to announce again; memberships are tested anew; timers go.
        assert about(uow, "keep") == {
            "campaign_audience": 1,
            "campaign_activity": 2,
            "campaign_activity_items": 1,
            "campaign_messages": 1,
            "campaign_clicks": 1,
            "campaign_conversions": 1,
            "campaign_unsubscribes": 1,
            "campaign_aliases": 1,
        }
        [member] = uow.rows.all(AudienceMember)
        assert (member.acquisition_channel, member.loyalty_points) == ("ads", 40)
        assert member.last_active_at == LATER
        assert uow.membership.reevaluated == [("keep", None)]

    async def test_the_duplicate_s_segments_publish_its_exits_first(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        buyers, gone = a_segment(uow), a_segment(uow, "Gone")
        a_customer(uow, "dupe", buyers)
        uow.rows.add(SegmentMember(segment_id=gone.id, customer_id="dupe", entered_at=SINCE))
        uow.rows.delete(gone)  # a membership of a deleted segment exits without an event

        await lifecycle.merge(uow, merged())

        [exited] = uow.outbox.published(SegmentExited)
        assert (exited.customer_id, exited.segment_id, exited.segment_name) == (
            "dupe",
            buyers.id,
            "Buyers",
        )
        assert uow.outbox.types() == ["rapport.segment.exited.v1"]
        assert uow.rows.all(SegmentMember) == []
        assert uow.segments.locks == 1

    async def test_the_survivor_keeps_its_own_row_and_an_unsubscribe_still_suppresses(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(AudienceMember(customer_id="keep"))
        uow.rows.add(AudienceMember(customer_id="dupe", acquisition_channel="ads"))
        uow.rows.add(ConsentState(customer_id="keep", channel="email", granted=True, version=4))
        uow.rows.add(
            ConsentState(customer_id="dupe", channel="email", granted=True, suppressed_at=SINCE)
        )
        uow.rows.add(ConsentState(customer_id="dupe", channel="sms", granted=True))

        await lifecycle.merge(uow, merged())

        assert [m.customer_id for m in uow.rows.all(AudienceMember)] == ["keep"]
        assert uow.rows.all(AudienceMember)[0].acquisition_channel == "ads"
        [consent] = uow.rows.all(ConsentState)
        assert (consent.customer_id, consent.channel) == ("keep", "email")
        assert (consent.granted, consent.suppressed_at, consent.version) == (False, SINCE, 4)

    async def test_ids_merged_into_the_duplicate_follow_it(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(Alias(merged_id="older", customer_id="dupe"))

        await lifecycle.merge(uow, merged())

        aliases = {a.merged_id: a.customer_id for a in uow.rows.all(Alias)}
        assert aliases == {"older": "keep", "dupe": "keep"}

    async def test_a_merge_applied_before_into_itself_or_of_an_erased_id_does_nothing(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = a_segment(uow)
        a_customer(uow, "dupe", segment)
        await lifecycle.merge(uow, merged())
        after = about(uow, "keep")
        uow.rows.add(ErasedCustomer(customer_id="gone"))

        await lifecycle.merge(uow, merged())
        await lifecycle.merge(uow, merged("keep", "keep"))
        await lifecycle.merge(uow, merged("keep", "gone"))
        await lifecycle.merge(uow, merged("gone", "other"))

        assert about(uow, "keep") == after
        assert len(uow.outbox.events) == 1
        assert uow.membership.reevaluated == [("keep", None)]

    async def test_a_merge_into_a_survivor_merged_since_goes_to_its_owner(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(Alias(merged_id="keep", customer_id="owner"))
        uow.rows.add(Message(campaign_id="c", customer_id="dupe", channel="email"))

        await lifecycle.merge(uow, merged())

        assert [m.customer_id for m in uow.rows.all(Message)] == ["owner"]
        assert uow.membership.reevaluated == [("owner", None)]


class TestErasure:
    async def test_nothing_about_the_customer_or_their_merged_ids_stays(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = a_segment(uow)
        a_customer(uow, "ann", segment)
        a_customer(uow, "old-ann", segment)
        uow.rows.add(Alias(merged_id="old-ann", customer_id="ann"))
        a_customer(uow, "bob", segment)
        bob = about(uow, "bob")

        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))

        assert about(uow, "ann") == {} and about(uow, "old-ann") == {}
        assert about(uow, "bob") == bob
        tombstones = {t.customer_id for t in uow.rows.all(ErasedCustomer)}
        assert tombstones == {"ann", "old-ann"}
        assert uow.outbox.forgotten == ["ann", "old-ann"]
        assert uow.outbox.events == []

    async def test_messages_and_touches_stay_for_the_counts_naming_nobody(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_customer(uow, "ann", a_segment(uow))
        uow.rows.add(Message(campaign_id="c", customer_id="ann", channel="sms", status="held"))

        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))

        sent, held = uow.rows.all(Message)
        for message in (sent, held):
            assert (message.customer_id, message.address, message.offer_code) == (None,) * 3
            assert (message.context, message.redeemed_order_id) == ({}, None)
        assert (sent.status, held.status, held.reason) == ("sent", "cancelled", "customer erased")
        [click] = uow.rows.all(Click)
        [conversion] = uow.rows.all(Conversion)
        assert click.customer_id is None
        assert (conversion.customer_id, conversion.order_id, conversion.order_key) == (None,) * 3

    async def test_stored_audience_lists_lose_the_erased_ids(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        uow.rows.add(Alias(merged_id="old-ann", customer_id="ann"))
        listed = Campaign(
            name="Listed",
            channel="email",
            variants=VARIANTS,
            customer_ids=["bob", "old-ann", "ann"],
        )
        uow.rows.add(listed)

        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))

        assert listed.customer_ids == ["bob"]

    async def test_erasing_twice_changes_nothing_more(self, uow: FakeCampaignUnitOfWork) -> None:
        a_customer(uow, "ann", a_segment(uow))
        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))
        [tombstone] = uow.rows.all(ErasedCustomer)

        erased = await lifecycle.erase_customer(uow, "ann")
        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))

        assert erased == []
        assert uow.rows.all(ErasedCustomer) == [tombstone]
        # The second asks to take back nothing more: the sent events went the first time.
        assert uow.outbox.forgotten == ["ann"]


class TestExport:
    async def test_every_domain_s_rows_of_the_customer_and_nobody_else_s(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        segment = a_segment(uow)
        a_customer(uow, "ann", segment)
        uow.rows.add(Alias(merged_id="old-ann", customer_id="ann"))
        a_customer(uow, "bob", segment)

        records = await lifecycle.export_customer(uow, "ann")

        assert list(records) == [*ABOUT, "campaign_tombstones"]
        counts = {table: len(rows) for table, rows in records.items()}
        assert counts == {**about(uow, "ann"), "campaign_tombstones": 0}
        assert all(counts[table] >= 1 for table in ABOUT)
        named = {row["customer_id"] for rows in records.values() for row in rows}
        assert named == {"ann"}
        [message] = records["campaign_messages"]
        assert message["address"] == "ann@example.com"

    async def test_an_erased_customer_exports_only_the_tombstone(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        a_customer(uow, "ann", a_segment(uow))
        await lifecycle.erase(uow, CustomerErased(customer_id="ann"))

        records = await lifecycle.export_customer(uow, "ann")

        assert [table for table, rows in records.items() if rows] == ["campaign_tombstones"]
        assert records["campaign_tombstones"][0]["customer_id"] == "ann"

    async def test_an_unknown_customer_exports_empty_lists(
        self, uow: FakeCampaignUnitOfWork
    ) -> None:
        records = await lifecycle.export_customer(uow, "nobody")

        assert records and all(rows == [] for rows in records.values())
