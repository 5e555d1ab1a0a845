"""What campaign learns from the log: the audience, behaviour, consents and journey timers.

The hot event types arrive as runs (the `@batch` handlers here). A run reads the
state it needs with one IN query per table, applies its events in log order to that state
in memory, writes each table with multi-row statements, and then tests each customer it
changed against the segments once (`segments.service.reevaluate_many`). Membership after a
run is what the events one at a time would leave; a customer who enters and leaves a segment
within one run publishes neither event. Surveys and points are rare and are applied one
event at a time; merges and erasures are in `lifecycle.py`, journey timers of a run in
`journeys/timers.py`.

One module although long: the runs and the single-event paths keep the same rules for the
same rows (metrics, consents, activity), and reading them side by side is how they stay equal."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import shared
from rapport_campaign.audience import store
from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
)
from rapport_campaign.audience.service import resolve, resolve_all
from rapport_campaign.journeys import store as journey_store
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.journeys.service import on_activity
from rapport_campaign.journeys.timers import Timers
from rapport_campaign.segments import service as segments
from rapport_campaign.settings import Settings
from rapport_campaign.shared import CHANNELS, utc
from rapport_campaign.tracking import service as tracking_service
from rapport_campaign.tracking import store as tracking_store
from rapport_campaign.unit_of_work import SqlCampaignUnitOfWork
from rapport_events.base import utcnow
from rapport_events.codec import Envelope
from rapport_events.consumer import batch
from rapport_events.types import (
    CartUpdated,
    ConsentGranted,
    ConsentRevoked,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    SurveyCompleted,
)

_AUDIENCE_COLUMNS = [column.name for column in store.AUDIENCE.columns]
_ACTIVITY_COLUMNS = [column.name for column in store.ACTIVITY.columns if column.name != "id"]
_ITEM_COLUMNS = [
    column.name for column in store.ITEMS.columns if column.name not in ("id", "activity_id")
]
# Profile's customer value (customer.value.changed), never computed here.
_VALUE_COLUMNS = [
    "orders",
    "revenue",
    "average_order_value",
    "lifetime_value",
    "tier",
    "first_order_at",
    "last_order_at",
    "updated_at",
]
# What campaign computes itself from its activity rows.
_METRIC_COLUMNS = [
    "last_active_at",
    "loyalty_points",
    "nps",
    "updated_at",
]
_ACTIVE = ["last_active_at", "updated_at"]
# Rows a run writes with Core: ORM copies of them in the session would be stale after it.
_WRITTEN = (AudienceMember, ConsentState, JourneyState, Alias, Activity, ActivityItem)


async def _reevaluate(
    session: AsyncSession, settings: Settings, customer_ids: Sequence[str], kinds: set[str] | None
) -> None:
    """The changed customers tested again against the segments events of `kinds` move."""
    uow = SqlCampaignUnitOfWork(session, settings.kafka.topic)
    await segments.reevaluate_many(uow, customer_ids, kinds)


def _fit(value: Any, size: int) -> str | None:
    if value is None:
        return None
    return str(value)[:size]


def _forget_written(session: AsyncSession) -> None:
    """Drop the session's ORM copies of rows a run wrote, so a later handler reads them anew."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, _WRITTEN):
            session.expunge(instance)


def _activity(
    event_id: str, customer_id: str, event_type: str, occurred_at: datetime, **fields: Any
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_ACTIVITY_COLUMNS)
    row.update(
        event_id=event_id,
        customer_id=customer_id,
        event_type=event_type,
        occurred_at=utc(occurred_at),
        properties={},
    )
    row.update(fields)
    return row


def _lines(items: Iterable[LineItem], customer_id: str) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": customer_id,
            "product_id": item.product_id[:128],
            "product_model": _fit(item.product_model, 128),
            "name": _fit(item.name, 256),
            "category": _fit(item.category, 128),
            "price": item.price,
            "quantity": item.quantity,
        }
        for item in items
    ]


@dataclass
class Behaviour:
    """The behavioural events of a run, stored with one multi-row insert per table."""

    recorded: set[str]
    activities: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, envelopes: Sequence[Envelope]) -> "Behaviour":
        # The inbox forgets ids after a while; an activity row keeps a replay a no-op.
        return cls(await store.recorded_event_ids(session, [e.id for e in envelopes]))

    def record(self, row: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> bool:
        """Queue one activity row; False when this event id was stored before."""
        if row["event_id"] in self.recorded:
            return False
        self.recorded.add(row["event_id"])
        self.activities.append(row)
        if lines:
            self.items[row["event_id"]] = lines
        return True

    async def write(self, session: AsyncSession) -> None:
        await store.insert_activities(session, self.activities, self.items)


def _apply_metrics(member: dict[str, Any], found: dict[str, Any]) -> None:
    """`refresh_metrics` on an audience row, from what `store.metrics` read."""
    points = 0
    for earned, balance in found["loyalty"]:
        points = int(balance) if balance is not None else points + int(earned)
    member["loyalty_points"] = points
    member["nps"] = found["nps"]
    _active(member, found["last_activity"])


def _active(member: dict[str, Any], at: datetime | None) -> None:
    candidates = [utc(t) for t in (member["last_active_at"], at) if t is not None]
    member["last_active_at"] = max(candidates) if candidates else None
    member["updated_at"] = utcnow()


@batch
async def apply_registrations(
    session: AsyncSession, events: Sequence[CustomerRegistered], settings: Settings
) -> None:
    """Registered customers join the audience, welcome journeys arm, every segment tests them.

    An erased id is dropped; one already known keeps its row (later events may have changed
    it); a re-registered id whose merge profile undid stands on its own again.
    """
    await session.flush()
    ids = [event.customer_id for event in events]
    erased = await store.erased_among(session, ids)
    aliased = set(await store.aliases(session, ids))
    members = await store.members(session, ids)
    added: dict[str, dict[str, Any]] = {}
    unaliased: list[str] = []
    for event in events:
        customer_id = event.customer_id
        if customer_id in erased:
            continue
        if customer_id in aliased:
            aliased.discard(customer_id)
            unaliased.append(customer_id)
        if customer_id in members:
            continue
        registered_at = utc(event.occurred_at)
        new = AudienceMember(
            customer_id=customer_id,
            # None once the customer's data key is shredded (a replay after an erasure).
            email=(event.email or "")[:320],
            first_name=(event.first_name or "")[:100],
            last_name=(event.last_name or "")[:100],
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
        members[customer_id] = added[customer_id] = {
            name: getattr(new, name) for name in _AUDIENCE_COLUMNS
        }
    await store.delete_aliases(session, unaliased)
    if not added:
        _forget_written(session)
        return
    # Behaviour may have arrived before the registration (anonymous ids identified later).
    found = await store.metrics(session, added)
    for customer_id, member in added.items():
        _apply_metrics(member, found[customer_id])
    await shared.upsert(session, store.AUDIENCE, list(added.values()), ["customer_id"], [])
    timers = await Timers.load(session, added)
    for customer_id, member in added.items():
        timers.registered(customer_id, utc(member["registered_at"]))
    await timers.write(session)
    _forget_written(session)
    await _reevaluate(session, settings, list(added), None)


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
_PROFILE_COLUMNS = [*_TEXT_FIELDS, "birth_date", "social_handles", "traits", "updated_at"]


def _update(member: dict[str, Any], changes: dict[str, Any]) -> bool:
    """Apply the fields profile says changed; whether something changed."""
    changed = False
    for name, value in changes.items():
        if name in _TEXT_FIELDS:
            if value is None and name in _REQUIRED:
                continue
            member[name] = _fit(value, _TEXT_FIELDS[name])
            changed = True
        elif name == "birth_date":
            member["birth_date"] = _date(value)
            changed = True
        elif name == "social_handles" and isinstance(value, dict):
            member["social_handles"] = {str(k): str(v) for k, v in value.items()}
            changed = True
        elif name == "traits" and isinstance(value, dict):
            member["traits"] = value  # profile bounds the map (100 traits, 16 KB)
            changed = True
    if changed:
        member["updated_at"] = utcnow()
    return changed


@batch
async def apply_customer_updates(
    session: AsyncSession, events: Sequence[CustomerUpdated], settings: Settings
) -> None:
    """Profile fields changed: the rows follow, segments on attributes are tested again."""
    await session.flush()
    resolved = await resolve_all(session, [event.customer_id for event in events])
    members = await store.members(session, {cid for cid in resolved.values() if cid})
    changed: dict[str, dict[str, Any]] = {}
    for event in events:
        customer_id = resolved[event.customer_id]
        member = members.get(customer_id) if customer_id else None
        if member is not None and _update(member, event.changes):
            changed[member["customer_id"]] = member
    await shared.upsert(
        session, store.AUDIENCE, list(changed.values()), ["customer_id"], _PROFILE_COLUMNS
    )
    _forget_written(session)
    await _reevaluate(session, settings, list(changed), {"profile"})


@batch
async def record_orders(
    session: AsyncSession,
    envelopes: Sequence[Envelope],
    settings: Settings,
) -> None:
    """Orders: activity rows, metrics, offer redemption and attribution, journeys, segments.

    The same order announced twice counts once.
    """
    await session.flush()
    resolved = await resolve_all(session, [e.data.customer_id for e in envelopes])  # type: ignore[attr-defined]
    owners = {cid for cid in resolved.values() if cid}
    behaviour = await Behaviour.load(session, envelopes)
    orders = await store.recorded_orders(
        session,
        owners,
        [e.data.order_id[:128] for e in envelopes],  # type: ignore[attr-defined]
    )
    applied: list[tuple[str, OrderCompleted]] = []
    for envelope in envelopes:
        event: OrderCompleted = envelope.data  # type: ignore[assignment]
        customer_id = resolved[event.customer_id]
        if customer_id is None or (customer_id, event.order_id[:128]) in orders:
            continue
        row = _activity(
            envelope.id,
            customer_id,
            "order.completed",
            event.occurred_at,
            ref=event.order_id[:128],
            value=event.revenue,
            currency=event.currency[:8],
            coupon=_fit(event.coupon, 128),
            channel=_fit(event.sales_channel, 128),
            properties={"discount": str(event.discount), "shipping": str(event.shipping)},
        )
        if behaviour.record(row, _lines(event.items, customer_id)):
            orders.add((customer_id, event.order_id[:128]))
            applied.append((customer_id, event))
    if not applied:
        return
    await behaviour.write(session)
    customers = list(dict.fromkeys(customer_id for customer_id, _ in applied))
    members = await store.members(session, customers)
    found = await store.metrics(session, members)
    for customer_id, member in members.items():
        _apply_metrics(member, found[customer_id])
    await shared.upsert(
        session, store.AUDIENCE, list(members.values()), ["customer_id"], _METRIC_COLUMNS
    )
    # Attribution reads clicks and offer codes; only orders that can be credited pay for it.
    clicked = await tracking_store.customers_with_clicks(session, customers)
    timers = await Timers.load(session, customers)
    _forget_written(session)
    uow = SqlCampaignUnitOfWork(session, settings.kafka.topic)
    for customer_id, event in applied:
        if event.coupon or customer_id in clicked:
            await tracking_service.attribute_order(uow, customer_id, event, settings)
        timers.order(customer_id, utc(event.occurred_at))
    await timers.write(session)
    _forget_written(session)
    await _reevaluate(session, settings, customers, {"order"})


@batch
async def apply_values(
    session: AsyncSession, events: Sequence[CustomerValueChanged], settings: Settings
) -> None:
    """Profile's values of the customers (orders, revenue, lifetime value, tier...) replace
    theirs in the audience; segments on those metrics are tested again.

    The last event of a customer in the run wins: each carries the whole value.
    """
    await session.flush()
    resolved = await resolve_all(session, [event.customer_id for event in events])
    latest: dict[str, CustomerValueChanged] = {}
    for event in events:
        customer_id = resolved[event.customer_id]
        if customer_id is not None:
            latest[customer_id] = event
    members = await store.members(session, latest)
    now = utcnow()
    for customer_id, member in members.items():
        event = latest[customer_id]
        member.update(
            orders=event.orders,
            revenue=event.revenue,
            average_order_value=event.average_order_value or Decimal(0),
            lifetime_value=event.lifetime_value,
            tier=event.tier,
            first_order_at=utc(event.first_order_at) if event.first_order_at else None,
            last_order_at=utc(event.last_order_at) if event.last_order_at else None,
            updated_at=now,
        )
    if not members:
        return
    await shared.upsert(
        session, store.AUDIENCE, list(members.values()), ["customer_id"], _VALUE_COLUMNS
    )
    _forget_written(session)
    await _reevaluate(session, settings, list(members), {"order"})


async def _record_activity(
    session: AsyncSession,
    envelopes: Sequence[Envelope],
    settings: Settings,
    kind: str,
    row_of: Any,
    on_timers: Any,
) -> None:
    """Store behavioural events, move last activity, push timers, test segments of `kind`."""
    await session.flush()
    resolved = await resolve_all(session, [e.data.customer_id for e in envelopes])  # type: ignore[attr-defined]
    behaviour = await Behaviour.load(session, envelopes)
    applied: list[tuple[str, Any, datetime]] = []
    for envelope in envelopes:
        customer_id = resolved[envelope.data.customer_id]  # type: ignore[attr-defined]
        if customer_id is None:
            continue
        row, lines = row_of(envelope, customer_id)
        if behaviour.record(row, lines):
            applied.append((customer_id, envelope.data, row["occurred_at"]))
    if not applied:
        return
    await behaviour.write(session)
    customers = list(dict.fromkeys(customer_id for customer_id, _, _ in applied))
    # Orders, points and surveys are unchanged: only the last activity moves.
    members = await store.members(session, customers)
    for customer_id, _, at in applied:
        if customer_id in members:
            _active(members[customer_id], at)
    await shared.upsert(session, store.AUDIENCE, list(members.values()), ["customer_id"], _ACTIVE)
    timers = await Timers.load(session, customers)
    for customer_id, event, at in applied:
        on_timers(timers, customer_id, event, at)
    await timers.write(session)
    _forget_written(session)
    await _reevaluate(session, settings, customers, {kind})


def _cart_row(envelope: Envelope, customer_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    event: CartUpdated = envelope.data  # type: ignore[assignment]
    row = _activity(
        envelope.id,
        customer_id,
        "cart.updated",
        event.occurred_at,
        ref=event.cart_id[:128],
        kind=event.action,
        value=event.value,
        currency=event.currency[:8],
    )
    return row, _lines(event.items, customer_id)


def _cart_timers(timers: Timers, customer_id: str, event: CartUpdated, at: datetime) -> None:
    timers.cart(customer_id, event, at)
    timers.activity(customer_id, at)


@batch
async def record_carts(
    session: AsyncSession, envelopes: Sequence[Envelope], settings: Settings
) -> None:
    """Cart changes: activity rows, abandoned-cart and re-engagement timers, segments."""
    await _record_activity(session, envelopes, settings, "cart", _cart_row, _cart_timers)


def _interaction_row(envelope: Envelope, customer_id: str) -> tuple[dict[str, Any], None]:
    event: InteractionTracked = envelope.data  # type: ignore[assignment]
    row = _activity(
        envelope.id,
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
    return row, None


def _interaction_timers(
    timers: Timers, customer_id: str, event: InteractionTracked, at: datetime
) -> None:
    timers.activity(customer_id, at)


@batch
async def record_interactions(
    session: AsyncSession, envelopes: Sequence[Envelope], settings: Settings
) -> None:
    """Page views, searches and custom events: activity, re-engagement timers, segments."""
    await _record_activity(
        session, envelopes, settings, "interaction", _interaction_row, _interaction_timers
    )


_CONSENT_COLUMNS = ["granted", "version", "source", "updated_at"]


@batch
async def apply_consents(
    session: AsyncSession, events: Sequence[ConsentGranted | ConsentRevoked], settings: Settings
) -> None:
    """Follow profile's marketing consents; an older version never overwrites a newer one.

    A withdrawal disarms the customer's timers on that channel; segments on consent are
    tested again for each customer whose consent changed.
    """
    await session.flush()
    marketing_events = [event for event in events if event.purpose == "marketing"]
    if not marketing_events:
        return
    resolved = await resolve_all(session, [event.customer_id for event in marketing_events])
    consents = await store.consents(session, {cid for cid in resolved.values() if cid})
    changed: dict[tuple[str, str], dict[str, Any]] = {}
    lifted: set[tuple[str, str]] = set()
    revoked: dict[str, list[str]] = {}
    customers: list[str] = []
    for event in marketing_events:
        customer_id = resolved[event.customer_id]
        if customer_id is None:
            continue
        granted = isinstance(event, ConsentGranted)
        occurred_at = utc(event.occurred_at)
        channels = []
        for channel in (event.channel,) if event.channel else CHANNELS:
            key = (customer_id, channel)
            consent = consents.get(key)
            if consent is None:
                consent = {
                    "customer_id": customer_id,
                    "channel": channel,
                    "granted": False,
                    "version": 0,
                    "source": None,
                    "updated_at": occurred_at,
                    "suppressed_at": None,
                }
                consents[key] = consent
            elif event.version <= consent["version"]:
                continue
            consent["granted"] = granted
            consent["version"] = event.version
            consent["source"] = _fit(event.source, 64)
            consent["updated_at"] = occurred_at
            suppressed = consent["suppressed_at"]
            # A grant given after an unsubscribe click lifts our own suppression.
            if granted and suppressed is not None and occurred_at > utc(suppressed):
                consent["suppressed_at"] = None
                lifted.add(key)
            changed[key] = consent
            channels.append(channel)
        if not channels:
            continue
        customers.append(customer_id)
        if not granted:
            for channel in channels:
                revoked.setdefault(channel, []).append(customer_id)
    # Only a lifted suppression writes that column: an unsubscribe click meanwhile stays.
    await shared.upsert(
        session,
        store.CONSENTS,
        [row for key, row in changed.items() if key in lifted],
        ["customer_id", "channel"],
        [*_CONSENT_COLUMNS, "suppressed_at"],
    )
    await shared.upsert(
        session,
        store.CONSENTS,
        [row for key, row in changed.items() if key not in lifted],
        ["customer_id", "channel"],
        _CONSENT_COLUMNS,
    )
    if revoked:
        journeys = await journey_store.SqlJourneyStore(session).journeys()
        for channel, ids in revoked.items():
            on_channel = [j.id for j in journeys if j.channel == channel]
            await journey_store.stop_timers(session, on_channel, ids, utcnow())
    _forget_written(session)
    await _reevaluate(session, settings, customers, {"consent"})


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


async def refresh_metrics(session: AsyncSession, member: AudienceMember) -> None:
    """Recompute the member's points, survey and activity metrics from the activity rows.

    Order values (orders, revenue, lifetime value, tier) are profile's: customer.value.changed.
    """
    customer_id = member.customer_id
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
    member = await store.SqlAudienceStore(session).get_member(customer_id)
    if member is not None:
        await refresh_metrics(session, member)
    await session.flush()


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


async def apply_survey(
    event: SurveyCompleted, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Survey answers: the NPS metric, activity for the journeys, segments on surveys."""
    customer_id = await record_survey(session, event, envelope.id)
    if customer_id is None:
        return
    await on_activity(session, customer_id, utc(event.occurred_at))
    await _reevaluate(session, settings, [customer_id], {"survey"})


async def apply_points(
    event: LoyaltyPointsEarned, envelope: Envelope, session: AsyncSession, settings: Settings
) -> None:
    """Loyalty points: the balance metric, and segments on loyalty."""
    customer_id = await record_points(session, event, envelope.id)
    if customer_id is not None:
        await _reevaluate(session, settings, [customer_id], {"loyalty"})
