"""Campaign's use cases: each writes its rows and its events in the caller's transaction.

The customer projection, consents and segment membership live here; campaigns,
journeys, sending, tracking and attribution are in `marketing.py`, which builds on these.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import rules, store
from rapport_campaign.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
    Segment,
    SegmentCreate,
    SegmentMember,
    SegmentUpdate,
    Tombstone,
)
from rapport_campaign.settings import Settings
from rapport_events import outbox
from rapport_events.base import Event, utcnow
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
    SurveyCompleted,
)

SOURCE = "/services/campaign"
CHANNELS = ("email", "sms", "push", "social")
# Any number well away from other services' advisory locks on a shared server.
SEGMENT_LOCK_KEY = 7_270_002


class NotFound(LookupError):
    """No such segment, campaign or customer (404)."""


class InvalidRequest(ValueError):
    """Well-formed input that cannot be carried out (422)."""


class Conflict(ValueError):
    """The request contradicts the state of the data (409)."""


def utc(value: datetime) -> datetime:
    """Every stored timestamp is UTC (SQLite keeps no zone, so mixing zones would misorder)."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def publish(session: AsyncSession, event: Event, settings: Settings) -> None:
    # The configured log, not outbox.add's default: the relay sends to the row's topic.
    outbox.add(session, event, source=SOURCE, topic=settings.kafka.topic)


def _fit(value: Any, size: int) -> str | None:
    if value is None:
        return None
    return str(value)[:size]


# --- identity ---------------------------------------------------------------------------------


async def resolve(session: AsyncSession, customer_id: str) -> str | None:
    """The id that owns `customer_id` now (itself or the survivor of a merge); None if erased."""
    if await store.get_tombstone(session, customer_id) is not None:
        return None
    alias = await store.get_alias(session, customer_id)
    if alias is None:
        return customer_id
    if await store.get_tombstone(session, alias.customer_id) is not None:
        return None
    return alias.customer_id


# --- the customer projection -----------------------------------------------------------------


async def register_customer(
    session: AsyncSession, event: CustomerRegistered
) -> AudienceMember | None:
    """Add a registered customer to the audience; None when erased or already known."""
    customer_id = event.customer_id
    if await store.get_tombstone(session, customer_id) is not None:
        return None
    alias = await store.get_alias(session, customer_id)
    if alias is not None:
        # Profile re-registers a customer whose merge it undid: the id stands on its own again.
        await store.delete_row(session, alias)
    if await store.get_member(session, customer_id) is not None:
        # Later events may have changed the row; a replayed registration must not undo them.
        return None
    registered_at = utc(event.occurred_at)
    member = AudienceMember(
        customer_id=customer_id,
        email=event.email[:320],
        first_name=event.first_name[:100],
        last_name=event.last_name[:100],
        phone=_fit(event.phone, 32),
        birth_date=event.birth_date,
        gender=_fit(event.gender, 32),
        income_band=_fit(event.income_band, 32),
        education=_fit(event.education, 64),
        country=_fit(event.country, 64),
        city=_fit(event.city, 100),
        acquisition_channel=_fit(event.acquisition_channel, 64),
        social_handles=dict(event.social_handles),
        registered_at=registered_at,
        last_active_at=registered_at,
    )
    store.add_member(session, member)
    # Behaviour may have arrived before the registration (anonymous ids identified later).
    await refresh_metrics(session, member)
    await session.flush()
    return member


_TEXT_FIELDS = {
    "email": 320,
    "first_name": 100,
    "last_name": 100,
    "phone": 32,
    "gender": 32,
    "income_band": 32,
    "education": 64,
    "country": 64,
    "city": 100,
    "acquisition_channel": 64,
}
_REQUIRED = ("email", "first_name", "last_name")


async def update_customer(session: AsyncSession, event: CustomerUpdated) -> str | None:
    """Apply the fields profile says changed; the customer id when something changed."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    member = await store.get_member(session, customer_id)
    if member is None:
        return None
    changed = False
    for name, value in event.changes.items():
        if name in _TEXT_FIELDS:
            if value is None and name in _REQUIRED:
                continue
            setattr(member, name, _fit(value, _TEXT_FIELDS[name]))
            changed = True
        elif name == "birth_date":
            member.birth_date = _date(value)
            changed = True
        elif name == "social_handles" and isinstance(value, dict):
            member.social_handles = {str(k): str(v) for k, v in value.items()}
            changed = True
    if not changed:
        return None
    member.updated_at = utcnow()
    session.add(member)
    await session.flush()
    return customer_id


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


async def refresh_metrics(session: AsyncSession, member: AudienceMember) -> None:
    """Recompute the member's order, points and survey metrics from the activity rows."""
    customer_id = member.customer_id
    orders, revenue, first, last = await store.order_totals(session, customer_id)
    member.orders = orders
    member.revenue = revenue
    member.first_order_at = utc(first) if first else None
    member.last_order_at = utc(last) if last else None
    member.average_order_value = (
        (revenue / orders).quantize(Decimal("0.01")) if orders else Decimal(0)
    )
    member.lifetime_value = lifetime_value(
        orders, revenue, member.first_order_at, member.last_order_at
    )
    member.tier = tier(orders, member.lifetime_value)
    points = 0
    for earned, balance in await store.loyalty_history(session, customer_id):
        points = int(balance) if balance is not None else points + int(earned)
    member.loyalty_points = points
    member.nps = await store.last_nps(session, customer_id)
    last_active = await store.last_activity_at(session, customer_id)
    candidates = [utc(t) for t in (member.last_active_at, last_active) if t is not None]
    member.last_active_at = max(candidates) if candidates else None
    member.updated_at = utcnow()
    session.add(member)


def lifetime_value(
    orders: int, revenue: Decimal, first: datetime | None, last: datetime | None
) -> Decimal:
    """Revenue to date plus one more year at the customer's own order rate.

    The rate is orders per year between the first and the last order, over at least a
    year, so one order is worth one more; it reads no clock, so it never drifts.
    """
    if not orders or first is None or last is None:
        return Decimal(0)
    years = max((last - first).total_seconds() / (365.25 * 86400), 1.0)
    average = revenue / orders
    projected = average * Decimal(str(orders / years))
    return (revenue + projected).quantize(Decimal("0.01"))


def tier(orders: int, value: Decimal) -> str:
    """Profitability tier by lifetime value (cut-offs in rules.TIER_LIFETIME_VALUE)."""
    if not orders:
        return "none"
    for name, threshold in rules.TIER_LIFETIME_VALUE:
        if value >= threshold:
            return name
    return "bronze"


def _items(items: Iterable[LineItem], customer_id: str) -> list[ActivityItem]:
    return [
        ActivityItem(
            activity_id=0,
            customer_id=customer_id,
            product_id=item.product_id[:128],
            product_model=_fit(item.product_model, 128),
            name=_fit(item.name, 256),
            category=_fit(item.category, 128),
            price=item.price,
            quantity=item.quantity,
        )
        for item in items
    ]


async def _record(
    session: AsyncSession,
    event_id: str,
    customer_id: str,
    event_type: str,
    occurred_at: datetime,
    items: Sequence[LineItem] = (),
    **fields: Any,
) -> bool:
    """Store one behavioural event; False when this event id was stored before."""
    if await store.activity_recorded(session, event_id):
        return False
    activity = Activity(
        event_id=event_id,
        customer_id=customer_id,
        event_type=event_type,
        occurred_at=utc(occurred_at),
        **fields,
    )
    await store.add_activity(session, activity, _items(items, customer_id))
    return True


async def _refresh(session: AsyncSession, customer_id: str) -> None:
    member = await store.get_member(session, customer_id)
    if member is not None:
        await refresh_metrics(session, member)
    await session.flush()


async def record_order(session: AsyncSession, event: OrderCompleted, event_id: str) -> str | None:
    """Store an order and refresh the metrics; the customer id, or None if nothing changed."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    if await store.order_recorded(session, customer_id, event.order_id):
        return None  # the same order announced twice counts once
    recorded = await _record(
        session,
        event_id,
        customer_id,
        "order.completed",
        event.occurred_at,
        event.items,
        ref=event.order_id[:128],
        value=event.revenue,
        currency=event.currency[:8],
        coupon=_fit(event.coupon, 128),
        channel=_fit(event.sales_channel, 128),
        properties={"discount": str(event.discount), "shipping": str(event.shipping)},
    )
    if not recorded:
        return None
    await _refresh(session, customer_id)
    return customer_id


async def record_cart(session: AsyncSession, event: CartUpdated, event_id: str) -> str | None:
    """Store a cart change; the customer id, or None if nothing changed."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    recorded = await _record(
        session,
        event_id,
        customer_id,
        "cart.updated",
        event.occurred_at,
        event.items,
        ref=event.cart_id[:128],
        kind=event.action,
        value=event.value,
        currency=event.currency[:8],
    )
    if not recorded:
        return None
    await _refresh(session, customer_id)
    return customer_id


async def record_interaction(
    session: AsyncSession, event: InteractionTracked, event_id: str
) -> str | None:
    """Store a page view, search or custom event; the customer id, or None."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    recorded = await _record(
        session,
        event_id,
        customer_id,
        "interaction.tracked",
        event.occurred_at,
        kind=event.kind,
        name=_fit(event.name, 256),
        url=_fit(event.url, 2048),
        search_query=_fit(event.search_query, 512),
        channel=_fit(event.utm.get("source"), 128),
        properties={"utm": dict(event.utm)} if event.utm else {},
    )
    if not recorded:
        return None
    await _refresh(session, customer_id)
    return customer_id


async def record_survey(session: AsyncSession, event: SurveyCompleted, event_id: str) -> str | None:
    """Store survey answers (the NPS metric); the customer id, or None."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    recorded = await _record(
        session,
        event_id,
        customer_id,
        "survey.completed",
        event.occurred_at,
        ref=event.survey_id[:128],
        value=Decimal(event.nps_score) if event.nps_score is not None else None,
        properties={"answers": event.answers},
    )
    if not recorded:
        return None
    await _refresh(session, customer_id)
    return customer_id


async def record_points(
    session: AsyncSession, event: LoyaltyPointsEarned, event_id: str
) -> str | None:
    """Store loyalty points (the balance metric); the customer id, or None."""
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None
    recorded = await _record(
        session,
        event_id,
        customer_id,
        "loyalty.points.earned",
        event.occurred_at,
        kind=event.program[:64],
        name=_fit(event.reason, 256),
        ref=_fit(event.order_id, 128),
        value=Decimal(event.points),
        balance=event.balance,
    )
    if not recorded:
        return None
    await _refresh(session, customer_id)
    return customer_id


# --- consents -----------------------------------------------------------------------------------


def consented(consent: ConsentState | None) -> bool:
    """Marketing on this channel is allowed: granted, and not unsubscribed since."""
    return consent is not None and consent.granted and consent.suppressed_at is None


async def apply_consent(
    session: AsyncSession, event: ConsentGranted | ConsentRevoked
) -> tuple[str | None, list[str]]:
    """Follow profile's marketing consents; an older version never overwrites a newer one.

    Returns the customer id (None when nothing changed) and the channels now revoked.
    """
    if event.purpose != "marketing":
        return None, []
    customer_id = await resolve(session, event.customer_id)
    if customer_id is None:
        return None, []
    granted = isinstance(event, ConsentGranted)
    occurred_at = utc(event.occurred_at)
    changed: list[str] = []
    for channel in (event.channel,) if event.channel else CHANNELS:
        consent = await store.get_consent(session, customer_id, channel)
        if consent is None:
            consent = ConsentState(customer_id=customer_id, channel=channel, version=0)
        elif event.version <= consent.version:
            continue
        consent.granted = granted
        consent.version = event.version
        consent.source = _fit(event.source, 64)
        consent.updated_at = occurred_at
        suppressed = consent.suppressed_at
        # A grant given after an unsubscribe click lifts our own suppression.
        if granted and suppressed is not None and occurred_at > utc(suppressed):
            consent.suppressed_at = None
        session.add(consent)
        changed.append(channel)
    if not changed:
        return None, []
    await session.flush()
    return customer_id, [] if granted else changed


async def suppress_channel(session: AsyncSession, customer_id: str, channel: str) -> bool:
    """Stop marketing on a channel at once (an unsubscribe); False when it already was."""
    consent = await store.get_consent(session, customer_id, channel)
    if consent is None:
        consent = ConsentState(customer_id=customer_id, channel=channel, version=0)
    already = consent.suppressed_at is not None and not consent.granted
    consent.granted = False
    consent.suppressed_at = consent.suppressed_at or utcnow()
    consent.source = "unsubscribe_link"
    session.add(consent)
    await session.flush()
    return not already


# --- merge and erasure ----------------------------------------------------------------------------


async def merge_customers(
    session: AsyncSession, event: CustomerMerged, settings: Settings
) -> tuple[str, str] | None:
    """Fold the merged customer's projection into the survivor; (merged, survivor) or None.

    The merged id's segment memberships exit; late events for it follow the alias.
    """
    survivor = await resolve(session, event.customer_id)
    merged = event.merged_customer_id
    if survivor is None or survivor == merged:
        return None
    if await store.get_tombstone(session, merged) is not None:
        return None
    alias = await store.get_alias(session, merged)
    if alias is not None and alias.customer_id == survivor:
        return None  # applied before
    await lock_segments(session)
    for segment_id in sorted(await store.memberships_of(session, merged)):
        segment = await store.get_segment(session, segment_id)
        await store.remove_members(session, segment_id, [merged])
        if segment is not None:
            publish(
                session,
                SegmentExited(customer_id=merged, segment_id=segment_id, segment_name=segment.name),
                settings,
            )
    for model in (ActivityItem, Activity):
        await store.update_rows(session, model, merged, {"customer_id": survivor})
    # Profile announces the survivor's consents after a merge (the most restrictive wins);
    # an unsubscribe click on either id still suppresses the survivor.
    for consent in await store.consents_of(session, merged):
        if consent.suppressed_at is not None:
            own = await store.get_consent(session, survivor, consent.channel)
            own = own or ConsentState(customer_id=survivor, channel=consent.channel, version=0)
            own.granted = False
            own.suppressed_at = own.suppressed_at or consent.suppressed_at
            session.add(own)
        await store.delete_row(session, consent)
    merged_member = await store.get_member(session, merged)
    survivor_member = await store.get_member(session, survivor)
    if merged_member is not None:
        if survivor_member is None:
            data = merged_member.model_dump()
            data["customer_id"] = survivor
            await store.delete_row(session, merged_member)
            await session.flush()
            survivor_member = AudienceMember(**data)
            store.add_member(session, survivor_member)
        else:
            if survivor_member.acquisition_channel is None:
                survivor_member.acquisition_channel = merged_member.acquisition_channel
            await store.delete_row(session, merged_member)
    await store.repoint_aliases(session, merged, survivor)
    if alias is None:
        store.add(session, Alias(merged_id=merged, customer_id=survivor))
    else:
        alias.customer_id = survivor
        session.add(alias)
    await session.flush()
    if survivor_member is not None:
        await refresh_metrics(session, survivor_member)
        await session.flush()
    return merged, survivor


async def erase_customer(session: AsyncSession, customer_id: str) -> list[str]:
    """Delete the projection of the customer and of ids merged into it; tombstone each id.

    Returns the ids erased now (none when erased before).
    """
    if await store.get_tombstone(session, customer_id) is not None:
        return []
    ids = [customer_id] + [
        alias.merged_id for alias in await store.rows_of(session, Alias, customer_id)
    ]
    await lock_segments(session)
    for erased in ids:
        for model in (ActivityItem, Activity, ConsentState, AudienceMember, SegmentMember, Alias):
            await store.delete_rows(session, model, erased)
        await store.delete_rows(session, Tombstone, erased)
        store.add(session, Tombstone(customer_id=erased))
    await session.flush()
    return ids


async def export_customer(session: AsyncSession, customer_id: str) -> dict[str, list[Any]]:
    """Every row campaign holds about the customer, by table."""
    records: dict[str, list[Any]] = {}
    for table, model in store.CUSTOMER_TABLES.items():
        rows = await store.rows_of(session, model, customer_id)
        records[table] = [row.model_dump(mode="json") for row in rows]
    tombstone = await store.get_tombstone(session, customer_id)
    records["campaign_tombstones"] = [tombstone.model_dump(mode="json")] if tombstone else []
    return records


async def get_member(session: AsyncSession, customer_id: str) -> tuple[AudienceMember, list[str]]:
    """One audience member and the segments they are in, or NotFound."""
    member = await store.get_member(session, customer_id)
    if member is None:
        raise NotFound(f"no audience member {customer_id}")
    return member, sorted(await store.memberships_of(session, customer_id))


# --- segments -----------------------------------------------------------------------------------

_PARSED: dict[str, rules.Rule] = {}


def parsed_rule(segment: Segment) -> rules.Rule:
    """The segment's rule as its model; rules never change, so each is parsed once."""
    rule = _PARSED.get(segment.id)
    if rule is None:
        rule = rules.parse(segment.rule)
        _PARSED[segment.id] = rule
    return rule


async def lock_segments(session: AsyncSession) -> None:
    """Serialise membership writers, so a recompute and an event never interleave.

    SQLite's BEGIN IMMEDIATE already lets one writer in at a time; PostgreSQL needs a lock.
    """
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        lock = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=SEGMENT_LOCK_KEY)
        await session.exec(lock)  # type: ignore[call-overload]


async def reevaluate(
    session: AsyncSession,
    customer_id: str,
    kinds: set[str] | None,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, bool]:
    """Test one customer against every segment an event of these kinds can change.

    Publishes segment.entered / segment.exited for what changed; `kinds=None` tests all.
    """
    segments = await store.list_segments(session)
    relevant = [s for s in segments if kinds is None or kinds & set(s.relevance)]
    if not relevant:
        return {}
    await lock_segments(session)
    now = now or utcnow()
    all_rules = {s.id: parsed_rule(s) for s in segments}
    conditions = {
        s.id: store.rule_condition(all_rules[s.id], now=now, segment_rules=all_rules)
        for s in relevant
    }
    results = await store.evaluate_customer(session, customer_id, conditions)
    current = await store.memberships_of(session, customer_id)
    for segment in relevant:
        inside = results[segment.id]
        if inside and segment.id not in current:
            await store.add_members(session, segment.id, [customer_id], now)
            publish(
                session,
                SegmentEntered(
                    customer_id=customer_id, segment_id=segment.id, segment_name=segment.name
                ),
                settings,
            )
        elif not inside and segment.id in current:
            await store.remove_members(session, segment.id, [customer_id])
            publish(
                session,
                SegmentExited(
                    customer_id=customer_id, segment_id=segment.id, segment_name=segment.name
                ),
                settings,
            )
    return results


def _check_rule_shape(rule: rules.Rule) -> None:
    nodes = sum(1 for _ in rules.walk(rule))
    if nodes > rules.MAX_NODES:
        raise InvalidRequest(f"the rule has {nodes} conditions; at most {rules.MAX_NODES}")
    if rules.depth(rule) > rules.MAX_DEPTH:
        raise InvalidRequest(f"the rule nests deeper than {rules.MAX_DEPTH} levels")


async def _analyse(
    session: AsyncSession, rule: rules.Rule
) -> tuple[rules.Analysis, list[str], dict[str, rules.Rule]]:
    """Check the rule's references; its analysis, transitive dependencies and every rule."""
    _check_rule_shape(rule)
    segments = {s.id: s for s in await store.list_segments(session)}
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
    session: AsyncSession, rule: rules.Rule, sample: int = 10
) -> tuple[int, list[str], bool]:
    """How many customers the rule matches now, a few of them, and whether it reads the clock."""
    analysis, _, all_rules = await _analyse(session, rule)
    condition = store.rule_condition(rule, now=utcnow(), segment_rules=all_rules)
    count, ids = await store.count_matching(session, condition, sample)
    return count, ids, analysis.time_dependent


async def create_segment(
    session: AsyncSession, data: SegmentCreate, settings: Settings
) -> tuple[Segment, int]:
    """Save a segment, compute its members for everyone and publish segment.entered for each."""
    analysis, depends_on, _ = await _analyse(session, data.rule)
    segment = Segment(
        name=data.name,
        description=data.description,
        rule=rules.dump(data.rule),
        relevance=sorted(analysis.relevance),
        depends_on=depends_on,
        time_dependent=analysis.time_dependent,
    )
    store.add(session, segment)
    await session.flush()
    count = await recompute_segment(session, segment, settings)
    # One more pass once committed catches events that ran beside this transaction.
    segment.refreshed_at = None
    session.add(segment)
    return segment, count


async def recompute_segment(
    session: AsyncSession, segment: Segment, settings: Settings, now: datetime | None = None
) -> int:
    """Evaluate the rule for everyone and publish the differences; returns the member count."""
    await lock_segments(session)
    now = now or utcnow()
    all_rules = {s.id: parsed_rule(s) for s in await store.list_segments(session)}
    all_rules[segment.id] = parsed_rule(segment)
    condition = store.rule_condition(all_rules[segment.id], now=now, segment_rules=all_rules)
    matching = await store.matching_ids(session, condition)
    current = await store.member_ids(session, segment.id)
    entered, exited = sorted(matching - current), sorted(current - matching)
    await store.add_members(session, segment.id, entered, now)
    await store.remove_members(session, segment.id, exited)
    for customer_id in entered:
        publish(
            session,
            SegmentEntered(
                customer_id=customer_id, segment_id=segment.id, segment_name=segment.name
            ),
            settings,
        )
    for customer_id in exited:
        publish(
            session,
            SegmentExited(
                customer_id=customer_id, segment_id=segment.id, segment_name=segment.name
            ),
            settings,
        )
    segment.refreshed_at = now
    session.add(segment)
    return len(matching)


async def get_segment(session: AsyncSession, segment_id: str) -> tuple[Segment, int]:
    segment = await store.get_segment(session, segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment, await store.member_count(session, segment_id)


async def list_segments(session: AsyncSession) -> list[tuple[Segment, int]]:
    counts = await store.member_counts(session)
    return [(s, counts.get(s.id, 0)) for s in await store.list_segments(session)]


async def update_segment(
    session: AsyncSession, segment_id: str, data: SegmentUpdate
) -> tuple[Segment, int]:
    """Rename or re-describe a segment."""
    segment, count = await get_segment(session, segment_id)
    for name, value in data.model_dump(exclude_unset=True).items():
        if name == "name" and value is None:
            continue
        setattr(segment, name, value)
    session.add(segment)
    return segment, count


async def delete_segment(session: AsyncSession, segment_id: str, settings: Settings) -> None:
    """Delete a segment no other segment or pending campaign uses; members exit."""
    segment, _ = await get_segment(session, segment_id)
    dependants = await store.segments_depending_on(session, segment_id)
    if dependants:
        names = ", ".join(s.id for s in dependants)
        raise Conflict(f"segments {names} use this segment; delete them first")
    campaigns = await store.campaigns_using_segment(session, segment_id)
    if campaigns:
        names = ", ".join(c.id for c in campaigns)
        raise Conflict(f"campaigns {names} target this segment and have not been sent")
    await lock_segments(session)
    for customer_id in sorted(await store.member_ids(session, segment_id)):
        publish(
            session,
            SegmentExited(
                customer_id=customer_id, segment_id=segment.id, segment_name=segment.name
            ),
            settings,
        )
    await store.delete_segment_members(session, segment_id)
    await store.delete_row(session, segment)
    _PARSED.pop(segment_id, None)


async def member_page(
    session: AsyncSession, segment_id: str, *, cursor: str | None, limit: int
) -> tuple[int, list[Any], str | None]:
    """One page of members in id order, the total, and the cursor of the next page."""
    await get_segment(session, segment_id)
    rows = await store.member_page(session, segment_id, after=cursor, limit=limit + 1)
    page = rows[:limit]
    next_cursor = page[-1].customer_id if len(rows) > limit else None
    return await store.member_count(session, segment_id), page, next_cursor
