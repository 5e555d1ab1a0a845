"""Segments' use cases: rules checked and saved, membership kept current, entered/exited
events published in the caller's transaction.

Every use case takes a `CampaignUnitOfWork`: the routes', the scheduler's refresh, and
`reevaluate` / `reevaluate_many`, which the projections run as events arrive."""

from collections.abc import Sequence
from datetime import datetime

from rapport_campaign.errors import Conflict, InvalidRequest, NotFound
from rapport_campaign.segments import rules
from rapport_campaign.segments.models import Segment, SegmentCreate, SegmentMember, SegmentUpdate
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events.base import Event, utcnow
from rapport_events.types import SegmentEntered, SegmentExited

_PARSED: dict[str, rules.Rule] = {}


def parsed_rule(segment: Segment) -> rules.Rule:
    """The segment's rule as its model; rules never change, so each is parsed once."""
    rule = _PARSED.get(segment.id)
    if rule is None:
        rule = rules.parse(segment.rule)
        _PARSED[segment.id] = rule
    return rule


async def reevaluate(
    uow: CampaignUnitOfWork, customer_id: str, kinds: set[str] | None
) -> dict[str, bool]:
    """Test one customer against every segment an event of these kinds can change
    (None: all), publishing segment.entered / segment.exited for what changed."""
    results = await reevaluate_many(uow, [customer_id], kinds)
    return results.get(customer_id, {})


async def reevaluate_many(
    uow: CampaignUnitOfWork,
    customer_ids: Sequence[str],
    kinds: set[str] | None,
    now: datetime | None = None,
) -> dict[str, dict[str, bool]]:
    """`reevaluate` for the customers a run changed, each once, after the run is applied.

    One query tests them all, one reads their memberships; the events are published per
    customer in the order given (segments in their order), as one by one would. Returns,
    per customer, whether they are in each segment tested.
    """
    customer_ids = list(dict.fromkeys(customer_ids))
    if not customer_ids:
        return {}
    segments = await uow.segments.list_segments()
    relevant = [s for s in segments if kinds is None or kinds & set(s.relevance)]
    if not relevant:
        return {}
    # Locked once a segment can change: no lock at all for events no segment reads.
    await uow.segments.lock_segments()
    now = now or utcnow()
    all_rules = {s.id: parsed_rule(s) for s in segments}
    results = await uow.segments.evaluate_customers(
        customer_ids, [s.id for s in relevant], now, all_rules
    )
    current = await uow.segments.memberships(customer_ids)
    entered: dict[str, list[str]] = {}
    exited: dict[str, list[str]] = {}
    events: list[Event] = []
    for customer_id in customer_ids:
        for segment in relevant:
            inside, was = results[customer_id][segment.id], segment.id in current[customer_id]
            if inside == was:
                continue
            change = SegmentEntered if inside else SegmentExited
            (entered if inside else exited).setdefault(segment.id, []).append(customer_id)
            events.append(
                change(customer_id=customer_id, segment_id=segment.id, segment_name=segment.name)
            )
    for segment_id, ids in entered.items():
        await uow.segments.add_members(segment_id, ids, now)
    for segment_id, ids in exited.items():
        await uow.segments.remove_members(segment_id, ids)
    await uow.outbox.publish(events)
    return results


def _check_rule_shape(rule: rules.Rule) -> None:
    nodes = sum(1 for _ in rules.walk(rule))
    if nodes > rules.MAX_NODES:
        raise InvalidRequest(f"the rule has {nodes} conditions; at most {rules.MAX_NODES}")
    if rules.depth(rule) > rules.MAX_DEPTH:
        raise InvalidRequest(f"the rule nests deeper than {rules.MAX_DEPTH} levels")


async def _analyse(
    uow: CampaignUnitOfWork, rule: rules.Rule
) -> tuple[rules.Analysis, list[str], dict[str, rules.Rule]]:
    """Check the rule's references; its analysis, transitive dependencies and every rule."""
    _check_rule_shape(rule)
    segments = {s.id: s for s in await uow.segments.list_segments()}
    referenced = rules.references(rule)
    unknown = sorted(referenced - set(segments))
    if unknown:
        raise InvalidRequest(f"the rule mentions unknown segments: {', '.join(unknown)}")
    analyses = {
        sid: rules.Analysis(relevance=frozenset(s.relevance), time_dependent=s.time_dependent)
        for sid, s in segments.items()
    }
    depends_on = set(referenced)
    for sid in referenced:
        depends_on |= set(segments[sid].depends_on or [])
    all_rules = {sid: parsed_rule(s) for sid, s in segments.items()}
    return rules.analyse(rule, analyses), sorted(depends_on), all_rules


async def preview_segment(
    uow: CampaignUnitOfWork, rule: rules.Rule, sample: int = 10
) -> tuple[int, list[str], bool]:
    """How many customers the rule matches now, a few of them, and whether it reads the clock."""
    analysis, _, all_rules = await _analyse(uow, rule)
    count, ids = await uow.segments.count_matching(rule, utcnow(), all_rules, sample)
    return count, ids, analysis.time_dependent


async def create_segment(uow: CampaignUnitOfWork, data: SegmentCreate) -> tuple[Segment, int]:
    """Save a segment, compute its members for everyone and publish segment.entered for each."""
    analysis, depends_on, _ = await _analyse(uow, data.rule)
    segment = Segment(
        name=data.name,
        description=data.description,
        rule=rules.dump(data.rule),
        relevance=sorted(analysis.relevance),
        depends_on=depends_on,
        time_dependent=analysis.time_dependent,
    )
    uow.segments.add(segment)
    await uow.flush()
    count = await recompute_segment(uow, segment)
    # One more pass once committed catches events that ran beside this transaction.
    segment.refreshed_at = None
    uow.segments.add(segment)
    return segment, count


def _changes(segment: Segment, entered: Sequence[str], exited: Sequence[str]) -> list[Event]:
    """segment.entered for each of `entered`, then segment.exited for each of `exited`."""
    named = {"segment_id": segment.id, "segment_name": segment.name}
    return [
        *(SegmentEntered(customer_id=customer_id, **named) for customer_id in entered),
        *(SegmentExited(customer_id=customer_id, **named) for customer_id in exited),
    ]


async def recompute_segment(
    uow: CampaignUnitOfWork, segment: Segment, now: datetime | None = None
) -> int:
    """Evaluate the rule for everyone and publish the differences; returns the member count."""
    await uow.segments.lock_segments()
    now = now or utcnow()
    all_rules = {s.id: parsed_rule(s) for s in await uow.segments.list_segments()}
    all_rules[segment.id] = parsed_rule(segment)
    matching = await uow.segments.matching_ids(all_rules[segment.id], now, all_rules)
    current = await uow.segments.member_ids(segment.id)
    entered, exited = sorted(matching - current), sorted(current - matching)
    await uow.segments.add_members(segment.id, entered, now)
    await uow.segments.remove_members(segment.id, exited)
    await uow.outbox.publish(_changes(segment, entered, exited))
    segment.refreshed_at = now
    uow.segments.add(segment)
    return len(matching)


async def get_segment(uow: CampaignUnitOfWork, segment_id: str) -> tuple[Segment, int]:
    """The segment and its member count, or NotFound."""
    segment = await uow.segments.get_segment(segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment, await uow.segments.member_count(segment_id)


async def list_segments(uow: CampaignUnitOfWork) -> list[tuple[Segment, int]]:
    """Every segment, oldest first, with its member count."""
    counts = await uow.segments.member_counts()
    return [(s, counts.get(s.id, 0)) for s in await uow.segments.list_segments()]


async def update_segment(
    uow: CampaignUnitOfWork, segment_id: str, data: SegmentUpdate
) -> tuple[Segment, int]:
    """Rename or re-describe a segment."""
    segment, count = await get_segment(uow, segment_id)
    for name, value in data.model_dump(exclude_unset=True).items():
        if name == "name" and value is None:
            continue
        setattr(segment, name, value)
    uow.segments.add(segment)
    return segment, count


async def delete_segment(uow: CampaignUnitOfWork, segment_id: str) -> None:
    """Delete a segment no other segment or pending campaign uses; members exit."""
    segment, _ = await get_segment(uow, segment_id)
    dependants = await uow.segments.segments_depending_on(segment_id)
    if dependants:
        names = ", ".join(s.id for s in dependants)
        raise Conflict(f"segments {names} use this segment; delete them first")
    campaigns = await uow.campaigns.campaigns_using_segment(segment_id)
    if campaigns:
        names = ", ".join(c.id for c in campaigns)
        raise Conflict(f"campaigns {names} target this segment and have not been sent")
    await uow.segments.lock_segments()
    members = sorted(await uow.segments.member_ids(segment_id))
    await uow.outbox.publish(_changes(segment, [], members))
    await uow.segments.delete_segment_members(segment_id)
    await uow.segments.delete(segment)
    _PARSED.pop(segment_id, None)


async def member_page(
    uow: CampaignUnitOfWork, segment_id: str, *, cursor: str | None, limit: int
) -> tuple[int, list[SegmentMember], str | None]:
    """One page of members in id order, the total, and the cursor of the next page."""
    await get_segment(uow, segment_id)
    rows = await uow.segments.member_page(segment_id, after=cursor, limit=limit + 1)
    page = rows[:limit]
    next_cursor = page[-1].customer_id if len(rows) > limit else None
    return await uow.segments.member_count(segment_id), page, next_cursor
