"""In-memory fakes of what the broadcasts', journeys', segments', audience's, links' and
sender's use cases and a customer's merge, erasure and export (`rapport_campaign.lifecycle`)
ask of campaign's stores, for unit tests: the same queries as the SQL ones, answered with plain
Python over rows kept by primary key.

`FakeCampaignUnitOfWork` puts them on one set of rows with a `FakeOutbox`; mypy checks it
is a `CampaignUnitOfWork`, so a fake that lacks a query, or answers it with another
signature, fails the lint.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import SQLModel

from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
    ErasedCustomer,
)
from rapport_campaign.audience.store import order_record, popular_product
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.messaging.models import Message
from rapport_campaign.messaging.store import ANONYMOUS_MESSAGE, IN_DOUBT, IN_FLIGHT
from rapport_campaign.messaging.template_data import Record
from rapport_campaign.segments import rules
from rapport_campaign.segments.models import Segment, SegmentMember
from rapport_campaign.shared import aware, utc
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_events import customer_ids
from rapport_events.base import utcnow
from rapport_events.testing.unit_of_work import FakeStore, FakeUnitOfWork, Rows

if TYPE_CHECKING:
    from rapport_campaign.unit_of_work import CampaignUnitOfWork

R = TypeVar("R", bound=SQLModel)


def _by(when: datetime | None, now: datetime) -> bool:
    return when is not None and aware(when) <= now


def _of(rows: Rows, model: type[R], customer_id: str) -> list[R]:
    """The rows of `model` about the customer, as a merge, an erasure and the export find
    them."""
    return rows.where(model, lambda row: getattr(row, "customer_id", None) == customer_id)


def _set(found: Iterable[SQLModel], values: Mapping[str, Any]) -> None:
    for row in found:
        for name, value in values.items():
            setattr(row, name, value)


def _delete(rows: Rows, found: Iterable[SQLModel]) -> None:
    for row in list(found):
        rows.delete(row)


# What the activity rows say of a customer's metrics (as `audience.projection.refresh_metrics`).
ACTIVE = ("order.completed", "cart.updated", "interaction.tracked", "survey.completed")


class FakeCampaignStore(FakeStore):
    async def get_campaign(self, campaign_id: str) -> Campaign | None:
        return self.rows.get(Campaign, campaign_id)

    async def lock_campaign(self, campaign_id: str) -> Campaign | None:
        # One caller at a time in memory: there is nothing to lock against.
        return self.rows.get(Campaign, campaign_id)

    async def list_campaigns(self, kind: str) -> list[Campaign]:
        found = self.rows.where(Campaign, lambda campaign: campaign.kind == kind)
        return sorted(found, key=lambda campaign: aware(campaign.created_at))

    async def campaigns_using_segment(self, segment_id: str) -> list[Campaign]:
        return self.rows.where(
            Campaign,
            lambda c: c.segment_id == segment_id and c.status in ("draft", "scheduled"),
        )

    async def due_campaigns(self, now: datetime) -> list[Campaign]:
        return self.rows.where(
            Campaign, lambda c: c.status == "scheduled" and _by(c.scheduled_at, now)
        )

    async def campaigns_to_decide(self, now: datetime) -> list[Campaign]:
        return self.rows.where(
            Campaign,
            lambda c: c.status == "sending" and c.winner is None and _by(c.decide_at, now),
        )

    async def sending_campaigns(self) -> list[Campaign]:
        return self.rows.where(Campaign, lambda c: c.kind == "broadcast" and c.status == "sending")

    async def campaigns_listing(self, customer_ids: Sequence[str]) -> list[Campaign]:
        wanted = set(customer_ids)
        return self.rows.where(Campaign, lambda c: bool(wanted & set(c.customer_ids or [])))


class FakeJourneyStore(FakeStore):
    async def insert_journey_states(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(JourneyState(**row) for row in rows)

    async def due_journey_states(self, now: datetime, limit: int) -> list[JourneyState]:
        due = self.rows.where(JourneyState, lambda state: _by(state.due_at, now))
        due.sort(key=lambda s: (aware(s.due_at or now), s.journey_id, s.customer_id))
        return due[:limit]

    async def claim_journey_state(self, state: JourneyState, due_at: datetime) -> bool:
        stored = self.rows.get(JourneyState, state.journey_id, state.customer_id)
        if stored is None or stored.due_at != due_at:
            return False
        stored.due_at, stored.fired_cycle = None, state.cycle
        return True

    async def journeys(self) -> list[Campaign]:
        return self.rows.where(Campaign, lambda campaign: campaign.kind == "journey")

    async def get_journey_state(self, journey_id: str, customer_id: str) -> JourneyState | None:
        return self.rows.get(JourneyState, journey_id, customer_id)

    async def journey_states_of(self, customer_id: str) -> list[JourneyState]:
        return _of(self.rows, JourneyState, customer_id)

    async def forget_journey_states(self, customer_id: str) -> None:
        _delete(self.rows, _of(self.rows, JourneyState, customer_id))


class FakeAudienceStore(FakeStore):
    """Merges (`Alias`) and erasures (`ErasedCustomer`) among the rows, resolved by the same
    `rapport_events.customer_ids` as the SQL lookup; members, consents, activity and orders
    (`Activity` rows and their `ActivityItem` lines) as stored."""

    async def resolve(self, customer_id: str) -> str | None:
        return await customer_ids.resolve(customer_id, self._survivors_of, self._erased_among)

    async def _survivors_of(self, merged_ids: set[str]) -> dict[str, str]:
        aliases = [self.rows.get(Alias, merged_id) for merged_id in merged_ids]
        return {alias.merged_id: alias.customer_id for alias in aliases if alias is not None}

    async def _erased_among(self, ids: set[str]) -> set[str]:
        return {c for c in ids if self.rows.get(ErasedCustomer, c) is not None}

    async def get_member(self, customer_id: str) -> AudienceMember | None:
        return self.rows.get(AudienceMember, customer_id)

    async def get_consent(self, customer_id: str, channel: str) -> ConsentState | None:
        return self.rows.get(ConsentState, customer_id, channel)

    async def withdrawn_customers(self, channel: str) -> set[str]:
        # As the SQL query reads it: revoked, or unsubscribed since a grant.
        found = self.rows.where(
            ConsentState,
            lambda c: c.channel == channel and (not c.granted or c.suppressed_at is not None),
        )
        return {consent.customer_id for consent in found}

    async def audience_activity(self) -> list[tuple[str, datetime | None]]:
        return [(m.customer_id, m.last_active_at) for m in self.rows.all(AudienceMember)]

    def _orders(self, test: Callable[[Activity], bool]) -> list[Activity]:
        return self.rows.where(Activity, lambda a: a.event_type == "order.completed" and test(a))

    def _lines(self, orders: list[Activity]) -> list[ActivityItem]:
        ids = {order.id for order in orders}
        return self.rows.where(ActivityItem, lambda item: item.activity_id in ids)

    async def bought_products(self, customer_id: str) -> list[tuple[str, str | None]]:
        lines = self._lines(self._orders(lambda order: order.customer_id == customer_id))
        return [(line.product_id, line.category) for line in lines]

    async def popular_products(self, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        lines: dict[str, list[ActivityItem]] = defaultdict(list)
        for line in self._lines(self._orders(lambda order: aware(order.occurred_at) >= since)):
            lines[line.product_id].append(line)
        buyers = {
            product: len({line.customer_id for line in bought}) for product, bought in lines.items()
        }
        ranked = sorted(lines, key=lambda product: (-buyers[product], product))[:limit]
        return [
            popular_product(
                product,
                max((line.name for line in lines[product] if line.name is not None), default=None),
                max(
                    (line.category for line in lines[product] if line.category is not None),
                    default=None,
                ),
                max(line.price for line in lines[product]),
            )
            for product in ranked
        ]

    async def last_order(self, customer_id: str) -> Record | None:
        orders = self._orders(lambda order: order.customer_id == customer_id)
        if not orders:
            return None
        latest = max(orders, key=lambda order: (aware(order.occurred_at), order.id or 0))
        lines = sorted(self._lines([latest]), key=lambda line: line.id or 0)
        return order_record(latest, lines)

    async def get_erased_customer(self, customer_id: str) -> ErasedCustomer | None:
        return self.rows.get(ErasedCustomer, customer_id)

    async def get_alias(self, merged_id: str) -> Alias | None:
        return self.rows.get(Alias, merged_id)

    async def aliases_of(self, customer_id: str) -> list[Alias]:
        return _of(self.rows, Alias, customer_id)

    async def repoint_aliases(self, old_id: str, new_id: str) -> None:
        _set(_of(self.rows, Alias, old_id), {"customer_id": new_id})

    async def consents_of(self, customer_id: str) -> list[ConsentState]:
        return _of(self.rows, ConsentState, customer_id)

    async def activities_of(self, customer_id: str) -> list[Activity]:
        return _of(self.rows, Activity, customer_id)

    async def activity_items_of(self, customer_id: str) -> list[ActivityItem]:
        return _of(self.rows, ActivityItem, customer_id)

    async def move_activity(self, from_id: str, to_id: str) -> None:
        for model in (ActivityItem, Activity):
            _set(_of(self.rows, model, from_id), {"customer_id": to_id})

    async def refresh_metrics(self, member: AudienceMember) -> None:
        mine = _of(self.rows, Activity, member.customer_id)
        mine.sort(key=lambda a: (aware(a.occurred_at), a.id or 0))
        points = 0
        for earned in (a for a in mine if a.event_type == "loyalty.points.earned"):
            added = points + int(earned.value or 0)
            points = earned.balance if earned.balance is not None else added
        member.loyalty_points = points
        surveys = [a for a in mine if a.event_type == "survey.completed" and a.value is not None]
        member.nps = int(surveys[-1].value or 0) if surveys else None
        active = [utc(a.occurred_at) for a in mine if a.event_type in ACTIVE]
        candidates = [utc(t) for t in (member.last_active_at, *active[-1:]) if t is not None]
        member.last_active_at = max(candidates) if candidates else None
        member.updated_at = utcnow()

    async def forget_customer(self, customer_id: str) -> None:
        for model in (ActivityItem, Activity, ConsentState, AudienceMember, Alias):
            _delete(self.rows, _of(self.rows, model, customer_id))

    async def tombstone(self, customer_id: str) -> None:
        self.rows.add(ErasedCustomer(customer_id=customer_id))


def rule_key(rule: "rules.Rule | dict[str, Any]") -> str:
    """One text per rule, however it was written, to look its matches up by."""
    parsed = rules.parse(rule) if isinstance(rule, dict) else rule
    return json.dumps(rules.dump(parsed), sort_keys=True)


class FakeSegmentStore(FakeStore):
    """Segments and members among the rows. Who a rule matches is the database's to say (a
    rule is one SQL condition, tested on both databases): here it is whom the test said,
    with `matches`, the rule matches; nobody otherwise."""

    def __init__(self, rows: Rows) -> None:
        super().__init__(rows)
        self.matching: dict[str, set[str]] = {}
        self.locks = 0

    def matches(self, rule: "rules.Rule | dict[str, Any]", *customer_ids: str) -> None:
        """From now on, `rule` matches exactly these customers."""
        self.matching[rule_key(rule)] = set(customer_ids)

    async def lock_segments(self) -> None:
        self.locks += 1

    async def get_segment(self, segment_id: str) -> Segment | None:
        return self.rows.get(Segment, segment_id)

    async def list_segments(self) -> list[Segment]:
        return sorted(self.rows.all(Segment), key=lambda s: (aware(s.created_at), s.id))

    async def segments_depending_on(self, segment_id: str) -> list[Segment]:
        return [s for s in await self.list_segments() if segment_id in (s.depends_on or [])]

    async def segments_to_refresh(self, older_than: datetime) -> list[Segment]:
        return [
            s
            for s in await self.list_segments()
            if s.refreshed_at is None
            or (s.time_dependent and aware(s.refreshed_at) < aware(older_than))
        ]

    async def matching_ids(
        self, rule: rules.Rule, now: datetime, segment_rules: Mapping[str, rules.Rule]
    ) -> set[str]:
        return set(self.matching.get(rule_key(rule), set()))

    async def evaluate_customers(
        self,
        customer_ids: Sequence[str],
        segment_ids: Sequence[str],
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
    ) -> dict[str, dict[str, bool]]:
        matched = {
            sid: await self.matching_ids(segment_rules[sid], now, segment_rules)
            for sid in segment_ids
        }
        return {cid: {sid: cid in matched[sid] for sid in segment_ids} for cid in customer_ids}

    async def count_matching(
        self,
        rule: rules.Rule,
        now: datetime,
        segment_rules: Mapping[str, rules.Rule],
        sample: int,
    ) -> tuple[int, list[str]]:
        found = await self.matching_ids(rule, now, segment_rules)
        return len(found), sorted(found)[:sample]

    def _members(self, segment_id: str) -> list[SegmentMember]:
        return self.rows.where(SegmentMember, lambda member: member.segment_id == segment_id)

    async def member_ids(self, segment_id: str) -> set[str]:
        return {member.customer_id for member in self._members(segment_id)}

    async def memberships_of(self, customer_id: str) -> set[str]:
        return (await self.memberships([customer_id]))[customer_id]

    async def memberships(self, customer_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {cid: set() for cid in customer_ids}
        for member in self.rows.where(SegmentMember, lambda member: member.customer_id in found):
            found[member.customer_id].add(member.segment_id)
        return found

    async def add_members(self, segment_id: str, customer_ids: Iterable[str], at: datetime) -> None:
        self.rows.extend(
            SegmentMember(segment_id=segment_id, customer_id=c, entered_at=at) for c in customer_ids
        )

    async def remove_members(self, segment_id: str, customer_ids: Iterable[str]) -> None:
        leaving = set(customer_ids)
        for member in self._members(segment_id):
            if member.customer_id in leaving:
                self.rows.delete(member)

    async def member_count(self, segment_id: str) -> int:
        return len(self._members(segment_id))

    async def member_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for member in self.rows.all(SegmentMember):
            counts[member.segment_id] += 1
        return dict(counts)

    async def member_page(
        self, segment_id: str, *, after: str | None, limit: int
    ) -> list[SegmentMember]:
        members = sorted(self._members(segment_id), key=lambda member: member.customer_id)
        return [m for m in members if after is None or m.customer_id > after][:limit]

    async def delete_segment_members(self, segment_id: str) -> None:
        for member in self._members(segment_id):
            self.rows.delete(member)

    async def members_of_customer(self, customer_id: str) -> list[SegmentMember]:
        return _of(self.rows, SegmentMember, customer_id)

    async def forget_memberships(self, customer_id: str) -> None:
        _delete(self.rows, _of(self.rows, SegmentMember, customer_id))


# The statuses of a message not yet out, which an erasure cancels.
UNFINISHED_STATUSES = ("held", "pending", "sending")


class FakeMessageStore(FakeStore):
    """Messages among the rows. A claim leases a message as the SQL does: `due_at` becomes
    the lease's end and the status `sending`, so it is not due again until the lease runs
    out; one handed to its channel (`IN_FLIGHT`) when it does is failed `IN_DOUBT` instead."""

    def _of(self, campaign_id: str, *statuses: str) -> list[Message]:
        return self.rows.where(
            Message,
            lambda m: m.campaign_id == campaign_id and (not statuses or m.status in statuses),
        )

    async def get_message(self, message_id: str) -> Message | None:
        return self.rows.get(Message, message_id)

    async def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(Message(**row) for row in rows)

    async def claim_due_messages(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[Message]:
        lapsed = self.rows.where(
            Message,
            lambda m: m.status == "sending" and _by(m.due_at, now) and m.reason == IN_FLIGHT,
        )
        _set(lapsed, {"status": "failed", "reason": IN_DOUBT})
        due = self.rows.where(
            Message, lambda m: m.status in ("pending", "sending") and _by(m.due_at, now)
        )
        claimed = sorted(due, key=lambda m: (aware(m.due_at), m.id))[:limit]
        _set(claimed, {"status": "sending", "due_at": lease_until})
        return sorted(claimed, key=lambda m: m.id)

    async def renew_message_lease(
        self, message_id: str, lease: datetime, now: datetime, lease_until: datetime
    ) -> bool:
        message = self.rows.get(Message, message_id)
        if message is None or message.status != "sending":
            return False
        if aware(message.due_at) != aware(lease) or not aware(message.due_at) > now:
            return False
        message.due_at = lease_until
        return True

    async def sent_since(self, customer_id: str, channel: str, since: datetime) -> int:
        return sum(
            1
            for m in _of(self.rows, Message, customer_id)
            if m.channel == channel and m.sent_at is not None and aware(m.sent_at) >= since
        )

    async def cancel_messages(self, campaign_id: str) -> None:
        for message in self._of(campaign_id, "held", "pending"):
            message.status, message.reason = "cancelled", "campaign cancelled"

    async def release_held_messages(self, campaign_id: str, variant: str, now: datetime) -> int:
        held = self._of(campaign_id, "held")
        for message in held:
            message.status, message.variant, message.due_at = "pending", variant, now
        return len(held)

    async def unfinished_messages(self, campaign_id: str) -> int:
        return len(self._of(campaign_id, "held", "pending", "sending"))

    async def variant_results(self, campaign_id: str) -> dict[str, tuple[int, int, int]]:
        sent: dict[str, int] = defaultdict(int)
        clicked: dict[str, int] = defaultdict(int)
        for message in self._of(campaign_id):
            if message.variant is not None:
                sent[message.variant] += message.sent_at is not None
                clicked[message.variant] += message.clicked_at is not None
        converted: dict[str | None, set[str]] = defaultdict(set)
        for conversion in self.rows.where(Conversion, lambda c: c.campaign_id == campaign_id):
            converted[conversion.variant].add(conversion.message_id)
        return {name: (sent[name], clicked[name], len(converted[name])) for name in sent}

    async def campaign_funnel(self, campaign_id: str) -> list[dict[str, Any]]:
        groups: dict[tuple[str | None, str], list[Message]] = defaultdict(list)
        for message in self._of(campaign_id):
            groups[message.variant, message.status].append(message)
        return [
            {
                "variant": variant,
                "status": status,
                "count": len(found),
                **{
                    name: sum(getattr(m, f"{name}_at") is not None for m in found)
                    for name in ("delivered", "opened", "clicked", "redeemed")
                },
            }
            for (variant, status), found in groups.items()
        ]

    async def message_by_offer_code(self, code: str) -> Message | None:
        found = self.rows.where(Message, lambda m: m.offer_code == code)
        return found[0] if found else None

    async def messages_of(self, customer_id: str) -> list[Message]:
        return _of(self.rows, Message, customer_id)

    async def move_messages(self, from_id: str, to_id: str) -> None:
        _set(_of(self.rows, Message, from_id), {"customer_id": to_id})

    async def cancel_customer_messages(self, customer_id: str) -> None:
        unfinished = [
            m for m in _of(self.rows, Message, customer_id) if m.status in UNFINISHED_STATUSES
        ]
        _set(unfinished, {"status": "cancelled", "reason": "customer erased"})

    async def anonymise_messages(self, customer_id: str) -> None:
        _set(_of(self.rows, Message, customer_id), ANONYMOUS_MESSAGE)


class FakeTrackingStore(FakeStore):
    """Clicks, conversions and unsubscribes among the rows. A claimed unsubscribe is not due
    again until its lease (`next_attempt_at`) runs out, as in SQL."""

    async def clicks_of(self, customer_id: str) -> list[Click]:
        return _of(self.rows, Click, customer_id)

    async def clicks_between(self, customer_id: str, start: datetime, end: datetime) -> list[Click]:
        clicks = self.rows.where(
            Click,
            lambda c: (
                c.customer_id == customer_id and aware(start) <= aware(c.clicked_at) <= aware(end)
            ),
        )
        return sorted(clicks, key=lambda c: (aware(c.clicked_at), c.id or 0))

    async def conversion_for_order(self, order_key: str) -> Conversion | None:
        found = self.rows.where(Conversion, lambda c: c.order_key == order_key)
        return found[0] if found else None

    async def conversions_of(self, customer_id: str) -> list[Conversion]:
        return _of(self.rows, Conversion, customer_id)

    async def unsubscribes_of(self, customer_id: str) -> list[Unsubscribe]:
        return _of(self.rows, Unsubscribe, customer_id)

    async def get_unsubscribe(self, unsubscribe_id: int) -> Unsubscribe | None:
        return self.rows.get(Unsubscribe, unsubscribe_id)

    async def claim_unsynced_unsubscribes(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[Unsubscribe]:
        due = self.rows.where(
            Unsubscribe, lambda u: u.synced_at is None and _by(u.next_attempt_at, now)
        )
        claimed = sorted(due, key=lambda u: u.id or 0)[:limit]
        _set(claimed, {"next_attempt_at": lease_until})
        return claimed

    async def move_tracking(self, from_id: str, to_id: str) -> None:
        for model in (Click, Conversion, Unsubscribe):
            _set(_of(self.rows, model, from_id), {"customer_id": to_id})

    async def anonymise_tracking(self, customer_id: str) -> None:
        _set(_of(self.rows, Click, customer_id), {"customer_id": None})
        _set(
            _of(self.rows, Conversion, customer_id),
            {"customer_id": None, "order_id": None, "order_key": None},
        )
        _delete(self.rows, _of(self.rows, Unsubscribe, customer_id))


class FakeSegmentMembership:
    """Which customers were to be tested again against segments, and for what changes.
    Whom a rule matches is the database's to say (see `FakeSegmentStore`): the re-evaluation
    itself runs on SQL in `tests/segments/test_service.py`."""

    def __init__(self) -> None:
        self.reevaluated: list[tuple[str, set[str] | None]] = []

    async def reevaluate(self, customer_id: str, kinds: set[str] | None) -> None:
        self.reevaluated.append((customer_id, set(kinds) if kinds is not None else None))


class FakeCampaignUnitOfWork(FakeUnitOfWork):
    """Campaign's stores over one set of rows, and an outbox that records what was
    published."""

    def __init__(self) -> None:
        super().__init__()
        self.campaigns = FakeCampaignStore(self.rows)
        self.journeys = FakeJourneyStore(self.rows)
        self.audience = FakeAudienceStore(self.rows)
        self.segments = FakeSegmentStore(self.rows)
        self.messages = FakeMessageStore(self.rows)
        self.tracking = FakeTrackingStore(self.rows)
        self.membership = FakeSegmentMembership()


if TYPE_CHECKING:
    # The fakes match the stores' Protocols structurally, member by member (subclassing a
    # Protocol would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: CampaignUnitOfWork = FakeCampaignUnitOfWork()
