"""Every query campaign makes, including the SQL a segment rule compiles to."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Text,
    and_,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    true,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float, String
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import rules, template_data
from rapport_campaign.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    Campaign,
    Click,
    ConsentState,
    Conversion,
    JourneyState,
    Message,
    Segment,
    SegmentMember,
    Tombstone,
    Unsubscribe,
)

AUDIENCE = AudienceMember.__table__  # type: ignore[attr-defined]
ACTIVITY = Activity.__table__  # type: ignore[attr-defined]
ITEMS = ActivityItem.__table__  # type: ignore[attr-defined]
CONSENTS = ConsentState.__table__  # type: ignore[attr-defined]
MEMBERS = SegmentMember.__table__  # type: ignore[attr-defined]
MESSAGES = Message.__table__  # type: ignore[attr-defined]
JOURNEY_STATES = JourneyState.__table__  # type: ignore[attr-defined]
NUMBER = Numeric(20, 6)
BULK = 1000
# Rows per multi-row statement: ~500, fewer for wide rows, under both databases' limits on
# bound parameters (SQLite 32,766; PostgreSQL's protocol 32,767).
ROWS_PER_STATEMENT = 500
MAX_PARAMETERS = 30_000


async def _rows(session: AsyncSession, statement: Executable) -> list[Any]:
    """Rows of a statement wider than sqlmodel's typed `select` overloads (five columns)."""
    result = await session.exec(statement)  # type: ignore[call-overload]
    return list(result.all())


def add(session: AsyncSession, row: SQLModel) -> None:
    session.add(row)


async def delete_row(session: AsyncSession, row: SQLModel) -> None:
    await session.delete(row)


def _chunks(items: Sequence[Any], size: int = BULK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows_per_statement(columns: int) -> int:
    return max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // max(columns, 1)))


async def upsert(
    session: AsyncSession,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert rows, or update the `update` columns (all others by default) of existing ones.

    One statement with every row as its parameters, ~500 rows at a time: the statement
    compiles once and is cached, and the driver sends the rows together (SQLAlchemy's
    "insertmanyvalues" where it applies), where `values([...])` would compile anew for each
    batch size. Every row has the same columns.
    """
    if not rows:
        return
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = list(rows[0])
    updated = [c for c in (update if update is not None else columns) if c not in keys]
    statement = make(table)
    if updated:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={c: statement.excluded[c] for c in updated}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    for chunk in _chunks(rows, _rows_per_statement(len(columns))):
        await session.exec(statement, params=list(chunk))  # type: ignore[call-overload]


# --- the customer projection ------------------------------------------------------------


async def get_member(session: AsyncSession, customer_id: str) -> AudienceMember | None:
    return await session.get(AudienceMember, customer_id)


def add_member(session: AsyncSession, member: AudienceMember) -> None:
    session.add(member)


async def get_tombstone(session: AsyncSession, customer_id: str) -> Tombstone | None:
    return await session.get(Tombstone, customer_id)


async def get_alias(session: AsyncSession, merged_id: str) -> Alias | None:
    return await session.get(Alias, merged_id)


async def activity_recorded(session: AsyncSession, event_id: str) -> bool:
    found = await session.exec(select(Activity.id).where(Activity.event_id == event_id))
    return found.first() is not None


async def order_recorded(session: AsyncSession, customer_id: str, order_id: str) -> bool:
    found = await session.exec(
        select(Activity.id).where(
            Activity.customer_id == customer_id,
            Activity.event_type == "order.completed",
            Activity.ref == order_id,
        )
    )
    return found.first() is not None


async def add_activity(
    session: AsyncSession, activity: Activity, items: Sequence[ActivityItem]
) -> None:
    session.add(activity)
    await session.flush()
    assert activity.id is not None
    for item in items:
        item.activity_id = activity.id
        session.add(item)


async def loyalty_history(session: AsyncSession, customer_id: str) -> list[tuple[Decimal, Any]]:
    """(points, balance) of each loyalty event, oldest first."""
    result = await _rows(
        session,
        sa_select(col(Activity.value), col(Activity.balance))
        .where(
            col(Activity.customer_id) == customer_id,
            col(Activity.event_type) == "loyalty.points.earned",
        )
        .order_by(col(Activity.occurred_at), col(Activity.id)),
    )
    return [(Decimal(str(value or 0)), balance) for value, balance in result]


async def audience_activity(session: AsyncSession) -> list[tuple[str, datetime | None]]:
    """Every audience member with the time of their latest activity."""
    result = await session.exec(select(AudienceMember.customer_id, AudienceMember.last_active_at))
    return [(customer_id, _time(last)) for customer_id, last in result.all()]


async def last_nps(session: AsyncSession, customer_id: str) -> int | None:
    result = await session.exec(
        select(col(Activity.value))
        .where(
            Activity.customer_id == customer_id,
            Activity.event_type == "survey.completed",
            col(Activity.value).is_not(None),
        )
        .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
        .limit(1)
    )
    value = result.first()
    return int(value) if value is not None else None


async def last_activity_at(session: AsyncSession, customer_id: str) -> datetime | None:
    result = await session.exec(
        select(func.max(Activity.occurred_at)).where(
            Activity.customer_id == customer_id,
            col(Activity.event_type).in_(
                ("order.completed", "cart.updated", "interaction.tracked", "survey.completed")
            ),
        )
    )
    return _time(result.one())


# --- the customer projection, a run at a time -----------------------------------------------


async def tombstoned(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    """Which of these ids were erased."""
    ids, found = sorted(set(customer_ids)), set[str]()
    for chunk in _chunks(ids):
        result = await session.exec(
            select(Tombstone.customer_id).where(col(Tombstone.customer_id).in_(chunk))
        )
        found.update(result.all())
    return found


async def aliases(session: AsyncSession, merged_ids: Iterable[str]) -> dict[str, str]:
    """The survivor of each of these ids that was merged into another."""
    ids, found = sorted(set(merged_ids)), {}
    for chunk in _chunks(ids):
        result = await session.exec(
            select(Alias.merged_id, Alias.customer_id).where(col(Alias.merged_id).in_(chunk))
        )
        found.update(dict(result.all()))
    return found


async def delete_aliases(session: AsyncSession, merged_ids: Sequence[str]) -> None:
    for chunk in _chunks(merged_ids):
        await session.exec(delete(Alias).where(col(Alias.merged_id).in_(chunk)))


async def members(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The audience rows of these customers, as column dicts."""
    ids, found = sorted(set(customer_ids)), {}
    for chunk in _chunks(ids):
        result = await _rows(session, sa_select(AUDIENCE).where(AUDIENCE.c.customer_id.in_(chunk)))
        found.update({row.customer_id: dict(row._mapping) for row in result})
    return found


async def consents(
    session: AsyncSession, customer_ids: Iterable[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The consent rows of these customers by (customer, channel), as column dicts."""
    ids, found = sorted(set(customer_ids)), {}
    for chunk in _chunks(ids):
        result = await _rows(session, sa_select(CONSENTS).where(CONSENTS.c.customer_id.in_(chunk)))
        found.update({(row.customer_id, row.channel): dict(row._mapping) for row in result})
    return found


async def recorded_event_ids(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    """Which of these event ids are stored as activity already."""
    ids, found = sorted(set(event_ids)), set[str]()
    for chunk in _chunks(ids):
        result = await session.exec(
            select(Activity.event_id).where(col(Activity.event_id).in_(chunk))
        )
        found.update(result.all())
    return found


async def recorded_orders(
    session: AsyncSession, customer_ids: Iterable[str], order_ids: Iterable[str]
) -> set[tuple[str, str]]:
    """(customer, order id) of the orders among these already stored."""
    customers, orders = sorted(set(customer_ids)), sorted(set(order_ids))
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(orders):
        result = await session.exec(
            select(Activity.customer_id, Activity.ref).where(
                Activity.event_type == "order.completed",
                col(Activity.ref).in_(chunk),
                col(Activity.customer_id).in_(customers),
            )
        )
        found.update((customer, ref) for customer, ref in result.all() if ref is not None)
    return found


async def insert_activities(
    session: AsyncSession,
    rows: Sequence[Mapping[str, Any]],
    items: Mapping[str, list[dict[str, Any]]],
) -> None:
    """Insert activity rows, and the product lines of each (`items` by event id)."""
    if not rows:
        return
    for chunk in _chunks(rows, _rows_per_statement(len(rows[0]))):
        await session.exec(insert(ACTIVITY), params=list(chunk))  # type: ignore[call-overload]
    # The ids of the rows with lines, read back by their unique event id: RETURNING in
    # parameter order makes SQLite insert one row per statement.
    ids: dict[str, int] = {}
    for part in _chunks(list(items)):
        query = sa_select(ACTIVITY.c.event_id, ACTIVITY.c.id).where(ACTIVITY.c.event_id.in_(part))
        found = await session.exec(query)  # type: ignore[call-overload]
        ids.update(dict(found.all()))
    lines = [
        {**line, "activity_id": ids[event_id]}
        for event_id, event_lines in items.items()
        for line in event_lines
    ]
    for chunk in _chunks(lines, _rows_per_statement(len(lines[0])) if lines else 1):
        await session.exec(insert(ITEMS), params=list(chunk))


async def metrics(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What `refresh_metrics` reads from the activity rows, for many customers at once.

    Per customer: loyalty (points, balance) rows oldest first, the latest NPS and the
    latest activity time. Order values are profile's (customer.value.changed).
    """
    ids = sorted(set(customer_ids))
    found: dict[str, dict[str, Any]] = {
        cid: {
            "loyalty": [],
            "nps": None,
            "last_activity": None,
        }
        for cid in ids
    }
    a = ACTIVITY.c
    for chunk in _chunks(ids):
        loyalty = await _rows(
            session,
            sa_select(a.customer_id, a.value, a.balance)
            .where(a.customer_id.in_(chunk), a.event_type == "loyalty.points.earned")
            .order_by(a.customer_id, a.occurred_at, a.id),
        )
        for cid, value, balance in loyalty:
            found[cid]["loyalty"].append((Decimal(str(value or 0)), balance))
        surveys = await _rows(
            session,
            sa_select(a.customer_id, a.value)
            .where(
                a.customer_id.in_(chunk),
                a.event_type == "survey.completed",
                a.value.is_not(None),
            )
            .order_by(a.customer_id, a.occurred_at.desc(), a.id.desc()),
        )
        for cid, value in surveys:
            if found[cid]["nps"] is None:
                found[cid]["nps"] = int(value)
        latest = await _rows(
            session,
            sa_select(a.customer_id, func.max(a.occurred_at))
            .where(
                a.customer_id.in_(chunk),
                a.event_type.in_(
                    ("order.completed", "cart.updated", "interaction.tracked", "survey.completed")
                ),
            )
            .group_by(a.customer_id),
        )
        for cid, last in latest:
            found[cid]["last_activity"] = _time(last)
    return found


async def journey_states(
    session: AsyncSession, journey_ids: Iterable[str], customer_ids: Iterable[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The timers of these customers in these journeys by (journey, customer), as dicts."""
    journeys, ids = sorted(set(journey_ids)), sorted(set(customer_ids))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not journeys:
        return found
    j = JOURNEY_STATES.c
    for chunk in _chunks(ids):
        result = await _rows(
            session,
            sa_select(JOURNEY_STATES).where(j.journey_id.in_(journeys), j.customer_id.in_(chunk)),
        )
        found.update({(row.journey_id, row.customer_id): dict(row._mapping) for row in result})
    return found


async def customers_with_clicks(session: AsyncSession, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers ever clicked a tracked link (attribution can credit them)."""
    ids, found = sorted(set(customer_ids)), set[str]()
    for chunk in _chunks(ids):
        result = await session.exec(
            select(Click.customer_id).where(col(Click.customer_id).in_(chunk)).distinct()
        )
        found.update(cid for cid in result.all() if cid is not None)
    return found


def _time(value: Any) -> datetime | None:
    # Aggregates over SQLite come back as text.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


async def get_consent(session: AsyncSession, customer_id: str, channel: str) -> ConsentState | None:
    return await session.get(ConsentState, (customer_id, channel))


async def consents_of(session: AsyncSession, customer_id: str) -> list[ConsentState]:
    result = await session.exec(select(ConsentState).where(ConsentState.customer_id == customer_id))
    return list(result.all())


async def withdrawn_customers(session: AsyncSession, channel: str) -> set[str]:
    """Customers who revoked or unsubscribed from marketing on this channel."""
    result = await session.exec(
        select(ConsentState.customer_id).where(
            ConsentState.channel == channel,
            or_(col(ConsentState.granted).is_(False), col(ConsentState.suppressed_at).is_not(None)),
        )
    )
    return set(result.all())


# --- recommendations ----------------------------------------------------------------------


async def bought_products(session: AsyncSession, customer_id: str) -> list[tuple[str, str | None]]:
    """(product_id, category) of every product the customer ordered."""
    result = await session.exec(
        select(ActivityItem.product_id, ActivityItem.category)
        .join(Activity, col(Activity.id) == col(ActivityItem.activity_id))
        .where(Activity.customer_id == customer_id, Activity.event_type == "order.completed")
    )
    return [(product, category) for product, category in result.all()]


async def last_order(session: AsyncSession, customer_id: str) -> template_data.Record | None:
    """The customer's most recent order with its lines, as templates see it."""
    result = await session.exec(
        select(Activity)
        .where(Activity.customer_id == customer_id, Activity.event_type == "order.completed")
        .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
        .limit(1)
    )
    found = result.first()
    if found is None:
        return None
    lines = await session.exec(
        select(ActivityItem)
        .where(ActivityItem.activity_id == found.id)
        .order_by(col(ActivityItem.id))
    )
    return template_data.order(
        found.ref or "",
        found.value,
        found.currency,
        _time(found.occurred_at) or found.occurred_at,
        [line.model_dump() for line in lines.all()],
    )


async def popular_products(
    session: AsyncSession, *, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """The products most customers bought since `since`, most popular first."""
    buyers = func.count(func.distinct(ActivityItem.customer_id))
    result = await _rows(
        session,
        sa_select(
            col(ActivityItem.product_id),
            func.max(col(ActivityItem.name)),
            func.max(col(ActivityItem.category)),
            func.max(col(ActivityItem.price)),
            buyers,
        )
        .join(Activity, col(Activity.id) == col(ActivityItem.activity_id))
        .where(col(Activity.event_type) == "order.completed", col(Activity.occurred_at) >= since)
        .group_by(col(ActivityItem.product_id))
        .order_by(buyers.desc(), col(ActivityItem.product_id))
        .limit(limit),
    )
    return [
        {
            "product_id": product_id,
            "name": name or product_id,
            "category": category,
            "price": str(Decimal(str(price)).quantize(Decimal("0.01")))
            if price is not None
            else None,
        }
        for product_id, name, category, price, _ in result
    ]


# --- segment rules as SQL -------------------------------------------------------------------


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February in a year without one
        return today.replace(year=today.year - years, day=28)


def _number(value: Any) -> Any:
    return literal(Decimal(str(value)), NUMBER)


def _compare_text(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    lowered = func.lower(column)
    if op == "exists":
        return and_(column.is_not(None), column != "")
    if op == "missing":
        return or_(column.is_(None), column == "")
    if op == "eq":
        return lowered == value.lower()
    if op == "ne":
        return or_(column.is_(None), lowered != value.lower())
    if op == "in":
        return lowered.in_([v.lower() for v in value])
    if op == "not_in":
        return or_(column.is_(None), lowered.not_in([v.lower() for v in value]))
    if op == "contains":
        return lowered.contains(value.lower(), autoescape=True)
    if op == "starts_with":
        return lowered.startswith(value.lower(), autoescape=True)
    raise ValueError(f"op {op} on text")


def _compare_number(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "exists":
        return column.is_not(None)  # type: ignore[no-any-return]
    if op == "missing":
        return column.is_(None)  # type: ignore[no-any-return]
    if op == "eq":
        return column == _number(value)  # type: ignore[no-any-return]
    if op == "ne":
        return or_(column.is_(None), column != _number(value))
    if op == "gt":
        return column > _number(value)  # type: ignore[no-any-return]
    if op == "gte":
        return column >= _number(value)  # type: ignore[no-any-return]
    if op == "lt":
        return column < _number(value)  # type: ignore[no-any-return]
    if op == "lte":
        return column <= _number(value)  # type: ignore[no-any-return]
    if op == "between":
        return and_(column >= _number(value[0]), column <= _number(value[1]))
    if op == "in":
        return column.in_([_number(v) for v in value])  # type: ignore[no-any-return]
    if op == "not_in":
        return or_(column.is_(None), column.not_in([_number(v) for v in value]))
    raise ValueError(f"op {op} on a number")


def _compare_days(column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """Days elapsed since a timestamp column, as comparisons on the column itself."""
    if op == "exists":
        return column.is_not(None)  # type: ignore[no-any-return]
    if op == "missing":
        return column.is_(None)  # type: ignore[no-any-return]
    if op == "between":
        return and_(
            column <= now - timedelta(days=value[0]), column >= now - timedelta(days=value[1])
        )
    threshold = now - timedelta(days=value)
    comparisons = {
        "gt": lambda: column < threshold,
        "gte": lambda: column <= threshold,
        "lt": lambda: column > threshold,
        "lte": lambda: column >= threshold,
    }
    return comparisons[op]()  # type: ignore[no-any-return]


def _compare_age(column: Any, op: str, value: Any, today: date) -> ColumnElement[bool]:
    """Whole years since a birth date, as comparisons on the date itself."""
    if op == "exists":
        return column.is_not(None)  # type: ignore[no-any-return]
    if op == "missing":
        return column.is_(None)  # type: ignore[no-any-return]

    def at_least(years: int) -> ColumnElement[bool]:
        return column <= _years_ago(today, years)  # type: ignore[no-any-return]

    def at_most(years: int) -> ColumnElement[bool]:
        return column > _years_ago(today, years + 1)  # type: ignore[no-any-return]

    if op == "eq":
        return and_(at_least(value), at_most(value))
    if op == "between":
        return and_(at_least(value[0]), at_most(value[1]))
    comparisons = {
        "gte": lambda: at_least(value),
        "gt": lambda: at_least(value + 1),
        "lte": lambda: at_most(value),
        "lt": lambda: at_most(value - 1) if value > 0 else false(),
    }
    return comparisons[op]()  # type: ignore[no-any-return]


def _compare_tier(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    order = rules.TIERS
    if op in ("eq", "ne", "in", "not_in"):
        return _compare_text(column, op, value)
    rank = order.index(value)
    chosen = {
        "gt": order[rank + 1 :],
        "gte": order[rank:],
        "lt": order[:rank],
        "lte": order[: rank + 1],
    }[op]
    return column.in_(chosen) if chosen else false()  # type: ignore[no-any-return]


def _score(metric: str, now: datetime) -> Any:
    c = AUDIENCE.c
    if metric == "recency_score":
        whens = [
            (c.last_order_at >= now - timedelta(days=d), s) for s, d in rules.RECENCY_SCORE_DAYS
        ]
        whens.append((c.last_order_at.is_not(None), 1))
    elif metric == "frequency_score":
        whens = [(c.orders >= n, s) for s, n in rules.FREQUENCY_SCORE_ORDERS]
    else:
        whens = [(c.revenue >= _number(m), s) for s, m in rules.MONETARY_SCORE_REVENUE[:-1]]
        whens.append((c.orders >= 1, 1))
    return case(*whens, else_=None)


def _compare(kind: str, column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    if kind == "text":
        return _compare_text(column, op, value)
    if kind == "number" or kind == "score":
        return _compare_number(column, op, value)
    if kind == "days":
        return _compare_days(column, op, value, now)
    if kind == "age":
        return _compare_age(column, op, value, now.date())
    return _compare_tier(column, op, value)


# --- custom traits: one JSON member of campaign_audience.traits, per database -------------


class _Trait(FunctionElement[Any]):
    """A custom trait of the audience row: NULL when absent or of another JSON type."""

    inherit_cache = True

    def __init__(self, name: str) -> None:
        super().__init__(AUDIENCE.c.traits, literal(name, String()))


class TraitText(_Trait):
    type = String()
    inherit_cache = True


class TraitNumber(_Trait):
    type = Float()
    inherit_cache = True


class TraitType(_Trait):
    """The trait's JSON type, NULL when the customer has no such trait."""

    type = String()
    inherit_cache = True


def _parts(element: _Trait, compiler: Any, **kw: Any) -> tuple[str, str, str]:
    # Each use of the name is its own bound parameter (positional styles count them).
    column, name = element.clauses
    return (
        compiler.process(column, **kw),
        compiler.process(name, **kw),
        compiler.process(name, **kw),
    )


@compiles(TraitText, "sqlite")
def _text_sqlite(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, second = _parts(element, compiler, **kw)
    return (
        f"""CASE WHEN json_type({traits}, '$."' || {first} || '"') = 'text' """
        f"""THEN json_extract({traits}, '$."' || {second} || '"') END"""
    )


@compiles(TraitNumber, "sqlite")
def _number_sqlite(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, second = _parts(element, compiler, **kw)
    return (
        f"""CASE WHEN json_type({traits}, '$."' || {first} || '"') IN ('integer', 'real') """
        f"""THEN json_extract({traits}, '$."' || {second} || '"') END"""
    )


@compiles(TraitType, "sqlite")
def _type_sqlite(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, _ = _parts(element, compiler, **kw)
    return f"""json_type({traits}, '$."' || {first} || '"')"""


@compiles(TraitText, "postgresql")
def _text_postgresql(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, second = _parts(element, compiler, **kw)
    return f"CASE WHEN json_typeof({traits} -> {first}) = 'string' THEN {traits} ->> {second} END"


@compiles(TraitNumber, "postgresql")
def _number_postgresql(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, second = _parts(element, compiler, **kw)
    return (
        f"CASE WHEN json_typeof({traits} -> {first}) = 'number' "
        f"THEN CAST({traits} ->> {second} AS DOUBLE PRECISION) END"
    )


@compiles(TraitType, "postgresql")
def _type_postgresql(element: _Trait, compiler: Any, **kw: Any) -> str:
    traits, first, _ = _parts(element, compiler, **kw)
    return f"json_typeof({traits} -> {first})"


def _trait(rule: rules.TraitCondition, now: datetime) -> ColumnElement[bool]:
    if rule.op in ("exists", "missing"):
        present = TraitType(rule.trait)
        return present.is_not(None) if rule.op == "exists" else present.is_(None)
    value = TraitNumber(rule.trait) if rule.kind == "number" else TraitText(rule.trait)
    return _compare(rule.kind, value, rule.op, rule.value, now)


_ATTRIBUTE_COLUMNS = {"age": "birth_date", "days_since_registration": "registered_at"}
_METRIC_COLUMNS = {
    "recency_days": "last_order_at",
    "days_since_activity": "last_active_at",
    "nps": "nps",
}


def _behaviour(node: rules.BehaviourCondition, now: datetime) -> ColumnElement[bool]:
    a = ACTIVITY.c
    conditions: list[ColumnElement[bool]] = [
        a.customer_id == AUDIENCE.c.customer_id,
        a.event_type == node.event,
    ]
    if node.within_days is not None:
        conditions.append(a.occurred_at >= now - timedelta(days=node.within_days))
    item_conditions: list[ColumnElement[bool]] = []
    event_properties = rules.EVENT_PROPERTIES[node.event]
    for where in node.where:
        if where.property in event_properties:
            column_name, kind = event_properties[where.property]
            conditions.append(_compare(kind, a[column_name], where.op, where.value, now))
        else:
            column_name, kind = rules.ITEM_PROPERTIES[where.property]
            item_conditions.append(_compare(kind, ITEMS.c[column_name], where.op, where.value, now))
    if item_conditions:
        conditions.append(
            exists(select(ITEMS.c.id).where(ITEMS.c.activity_id == a.id, *item_conditions))
        )
    matching = select(a.id).where(*conditions).correlate(AUDIENCE)
    at_least, at_most = node.at_least or 0, node.at_most
    if at_most is None and at_least <= 1:
        return exists(matching) if at_least == 1 else true()
    if at_most == 0:
        return not_(exists(matching))
    count = (
        select(func.count()).select_from(ACTIVITY).where(*conditions).correlate(AUDIENCE)
    ).scalar_subquery()
    bounds = [count >= at_least] if at_least else []
    if at_most is not None:
        bounds.append(count <= at_most)
    return and_(*bounds)


def rule_condition(
    rule: rules.Rule,
    *,
    now: datetime,
    segment_rules: Mapping[str, rules.Rule],
    _expanding: tuple[str, ...] = (),
) -> ColumnElement[bool]:
    """The rule as a condition on campaign_audience rows.

    A segment reference is expanded into that segment's own rule, so one customer can
    be tested against a chain of segments in one query, whatever order they change in.
    """

    def again(child: rules.Rule, expanding: tuple[str, ...] = _expanding) -> ColumnElement[bool]:
        return rule_condition(child, now=now, segment_rules=segment_rules, _expanding=expanding)

    if isinstance(rule, rules.AllOf):
        return and_(*(again(child) for child in rule.all))
    if isinstance(rule, rules.AnyOf):
        return or_(*(again(child) for child in rule.any))
    if isinstance(rule, rules.Not):
        return not_(again(rule.not_))
    if isinstance(rule, rules.AttributeCondition):
        column = AUDIENCE.c[_ATTRIBUTE_COLUMNS.get(rule.attribute, rule.attribute)]
        return _compare(rules.ATTRIBUTES[rule.attribute], column, rule.op, rule.value, now)
    if isinstance(rule, rules.TraitCondition):
        return _trait(rule, now)
    if isinstance(rule, rules.MetricCondition):
        kind = rules.METRICS[rule.metric]
        column = (
            _score(rule.metric, now)
            if kind == "score"
            else AUDIENCE.c[_METRIC_COLUMNS.get(rule.metric, rule.metric)]
        )
        return _compare(kind, column, rule.op, rule.value, now)
    if isinstance(rule, rules.BehaviourCondition):
        return _behaviour(rule, now)
    if isinstance(rule, rules.ConsentCondition):
        c = CONSENTS.c
        return exists(
            select(c.customer_id)
            .where(
                c.customer_id == AUDIENCE.c.customer_id,
                c.channel == rule.consent,
                c.granted.is_(True),
                c.suppressed_at.is_(None),
            )
            .correlate(AUDIENCE)
        )
    if isinstance(rule, rules.SegmentCondition):
        referenced = segment_rules.get(rule.segment)
        if referenced is None or rule.segment in _expanding:
            return false()
        return again(referenced, (*_expanding, rule.segment))
    raise TypeError(f"unknown rule node {type(rule).__name__}")


async def matching_ids(session: AsyncSession, condition: ColumnElement[bool]) -> set[str]:
    result = await session.exec(select(AUDIENCE.c.customer_id).where(condition))
    return set(result.all())


async def count_matching(
    session: AsyncSession, condition: ColumnElement[bool], sample: int
) -> tuple[int, list[str]]:
    count = await session.exec(select(func.count()).where(condition).select_from(AUDIENCE))
    ids = await session.exec(
        select(AUDIENCE.c.customer_id)
        .where(condition)
        .order_by(AUDIENCE.c.customer_id)
        .limit(sample)
    )
    return int(count.one()), list(ids.all())


async def evaluate_customer(
    session: AsyncSession, customer_id: str, conditions: Mapping[str, ColumnElement[bool]]
) -> dict[str, bool]:
    """Which of the conditions one customer meets, in one query."""
    if not conditions:
        return {}
    names = list(conditions)
    columns: list[KeyedColumnElement[Any]] = [
        case((conditions[name], 1), else_=0).label(f"c{index}") for index, name in enumerate(names)
    ]
    rows = await _rows(
        session,
        sa_select(*columns).select_from(AUDIENCE).where(AUDIENCE.c.customer_id == customer_id),
    )
    row = rows[0] if rows else None
    if row is None:
        return dict.fromkeys(names, False)
    return {name: bool(value) for name, value in zip(names, row, strict=True)}


# --- segments --------------------------------------------------------------------------------


async def get_segment(session: AsyncSession, segment_id: str) -> Segment | None:
    return await session.get(Segment, segment_id)


async def list_segments(session: AsyncSession) -> list[Segment]:
    result = await session.exec(select(Segment).order_by(col(Segment.created_at), col(Segment.id)))
    return list(result.all())


async def segments_depending_on(session: AsyncSession, segment_id: str) -> list[Segment]:
    return [s for s in await list_segments(session) if segment_id in (s.depends_on or [])]


async def segments_to_refresh(session: AsyncSession, older_than: datetime) -> list[Segment]:
    """New segments not yet reconciled, and clock-dependent ones due for a recompute."""
    result = await session.exec(
        select(Segment)
        .where(
            or_(
                col(Segment.refreshed_at).is_(None),
                and_(col(Segment.time_dependent).is_(True), col(Segment.refreshed_at) < older_than),
            )
        )
        .order_by(col(Segment.created_at), col(Segment.id))
    )
    return list(result.all())


async def evaluate_customers(
    session: AsyncSession,
    customer_ids: Sequence[str],
    conditions: Mapping[str, ColumnElement[bool]],
) -> dict[str, dict[str, bool]]:
    """Which of the conditions each customer meets, one query per chunk of customers."""
    names = list(conditions)
    found = {cid: dict.fromkeys(names, False) for cid in customer_ids}
    if not names:
        return found
    columns: list[KeyedColumnElement[Any]] = [
        case((conditions[name], 1), else_=0).label(f"c{index}") for index, name in enumerate(names)
    ]
    for chunk in _chunks(sorted(set(customer_ids))):
        rows = await _rows(
            session,
            sa_select(AUDIENCE.c.customer_id, *columns).where(AUDIENCE.c.customer_id.in_(chunk)),
        )
        for cid, *values in rows:
            found[cid] = {name: bool(value) for name, value in zip(names, values, strict=True)}
    return found


async def memberships(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, set[str]]:
    """The segments each of these customers is in."""
    ids = sorted(set(customer_ids))
    found: dict[str, set[str]] = {cid: set() for cid in ids}
    for chunk in _chunks(ids):
        result = await session.exec(
            select(MEMBERS.c.customer_id, MEMBERS.c.segment_id).where(
                MEMBERS.c.customer_id.in_(chunk)
            )
        )
        for cid, segment_id in result.all():
            found[cid].add(segment_id)
    return found


async def member_ids(session: AsyncSession, segment_id: str) -> set[str]:
    result = await session.exec(
        select(MEMBERS.c.customer_id).where(MEMBERS.c.segment_id == segment_id)
    )
    return set(result.all())


async def memberships_of(session: AsyncSession, customer_id: str) -> set[str]:
    result = await session.exec(
        select(MEMBERS.c.segment_id).where(MEMBERS.c.customer_id == customer_id)
    )
    return set(result.all())


async def add_members(
    session: AsyncSession, segment_id: str, customer_ids: Iterable[str], at: datetime
) -> None:
    rows = [
        {"segment_id": segment_id, "customer_id": cid, "entered_at": at} for cid in customer_ids
    ]
    for start in range(0, len(rows), BULK):
        await session.exec(insert(MEMBERS), params=rows[start : start + BULK])


async def remove_members(
    session: AsyncSession, segment_id: str, customer_ids: Iterable[str]
) -> None:
    ids = list(customer_ids)
    for start in range(0, len(ids), BULK):
        await session.exec(
            delete(MEMBERS).where(
                MEMBERS.c.segment_id == segment_id,
                MEMBERS.c.customer_id.in_(ids[start : start + BULK]),
            )
        )


async def member_count(session: AsyncSession, segment_id: str) -> int:
    result = await session.exec(
        select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_id == segment_id)
    )
    return int(result.one())


async def member_counts(session: AsyncSession) -> dict[str, int]:
    result = await session.exec(
        select(MEMBERS.c.segment_id, func.count()).group_by(MEMBERS.c.segment_id)
    )
    return {segment_id: int(count) for segment_id, count in result.all()}


async def member_page(
    session: AsyncSession, segment_id: str, *, after: str | None, limit: int
) -> list[SegmentMember]:
    query = select(SegmentMember).where(SegmentMember.segment_id == segment_id)
    if after is not None:
        query = query.where(SegmentMember.customer_id > after)
    result = await session.exec(query.order_by(col(SegmentMember.customer_id)).limit(limit))
    return list(result.all())


async def delete_segment_members(session: AsyncSession, segment_id: str) -> None:
    await session.exec(delete(MEMBERS).where(MEMBERS.c.segment_id == segment_id))


# --- campaigns and messages --------------------------------------------------------------------


async def get_campaign(session: AsyncSession, campaign_id: str) -> Campaign | None:
    return await session.get(Campaign, campaign_id)


async def lock_campaign(session: AsyncSession, campaign_id: str) -> Campaign | None:
    result = await session.exec(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    )
    return result.first()


async def list_campaigns(session: AsyncSession, kind: str) -> list[Campaign]:
    result = await session.exec(
        select(Campaign).where(Campaign.kind == kind).order_by(col(Campaign.created_at))
    )
    return list(result.all())


async def campaigns_using_segment(session: AsyncSession, segment_id: str) -> list[Campaign]:
    result = await session.exec(
        select(Campaign).where(
            Campaign.segment_id == segment_id, col(Campaign.status).in_(("draft", "scheduled"))
        )
    )
    return list(result.all())


async def active_journeys(session: AsyncSession, trigger: str) -> list[Campaign]:
    result = await session.exec(
        select(Campaign).where(
            Campaign.kind == "journey", Campaign.trigger == trigger, col(Campaign.active).is_(True)
        )
    )
    return list(result.all())


async def journeys(session: AsyncSession) -> list[Campaign]:
    result = await session.exec(select(Campaign).where(Campaign.kind == "journey"))
    return list(result.all())


async def due_campaigns(session: AsyncSession, now: datetime) -> list[Campaign]:
    """Scheduled campaigns whose time has come, locked for this launch.

    One being launched or cancelled by hand is locked, so it is skipped; PostgreSQL checks the
    status again on the row it locks, so one launched by hand just before is not due any more.
    """
    result = await session.exec(
        select(Campaign)
        .where(Campaign.status == "scheduled", col(Campaign.scheduled_at) <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def campaigns_to_decide(session: AsyncSession, now: datetime) -> list[Campaign]:
    """A/B tests due for a decision, locked: another scheduler skips them (SKIP LOCKED)."""
    result = await session.exec(
        select(Campaign)
        .where(
            Campaign.status == "sending",
            col(Campaign.winner).is_(None),
            col(Campaign.decide_at) <= now,
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def sending_campaigns(session: AsyncSession) -> list[Campaign]:
    """Broadcasts still sending, locked against another scheduler and a cancel by hand."""
    result = await session.exec(
        select(Campaign)
        .where(Campaign.kind == "broadcast", Campaign.status == "sending")
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def release_held_messages(
    session: AsyncSession, campaign_id: str, variant: str, now: datetime
) -> int:
    """The messages held back for an A/B decision go out with the winning variant."""
    result = await session.exec(
        update(Message)
        .where(col(Message.campaign_id) == campaign_id, col(Message.status) == "held")
        .values(status="pending", variant=variant, due_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BULK):
        await session.exec(insert(MESSAGES), params=rows[start : start + BULK])


async def get_message(session: AsyncSession, message_id: str) -> Message | None:
    return await session.get(Message, message_id)


# A message's reason while a sender hands it to its channel, and once that sender's lease ran
# out with no outcome recorded.
IN_FLIGHT = "handed to the channel, outcome not recorded yet"
IN_DOUBT = (
    "outcome unknown: the sender stopped after handing it to the channel; "
    "not sent again, so it cannot arrive twice"
)


async def claim_due_messages(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[Message]:
    """Lease up to `limit` due messages to this sender until `lease_until`, in one statement.

    Due means pending and due, or claimed by a sender whose lease ran out (it died mid-send).
    On PostgreSQL the rows another sender is claiming are skipped (SKIP LOCKED), so replicas
    share the work without waiting for each other; SQLite lets one writer in at a time.
    The lease's end is the claim's token: `renew_message_lease` and the outcome check it.

    A message whose lease ran out after it was handed to its channel (`IN_FLIGHT`: the
    sender died between the channel's answer and recording it) is not claimed again: the
    channel may have taken it, and a second copy would reach the customer. It is recorded
    as failed, `IN_DOUBT`, so each message reaches the channel at most once.
    """
    await session.exec(
        update(Message)
        .where(
            col(Message.status) == "sending",
            col(Message.due_at) <= now,
            col(Message.reason) == IN_FLIGHT,
        )
        .values(status="failed", reason=IN_DOUBT)
    )
    due = (
        select(col(Message.id))
        .where(col(Message.status).in_(("pending", "sending")), col(Message.due_at) <= now)
        .order_by(col(Message.due_at), col(Message.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.exec(
        update(Message)
        .where(col(Message.id).in_(due.scalar_subquery()))
        .values(status="sending", due_at=lease_until)
        .returning(col(Message.id))
    )
    claimed = list(result.scalars().all())  # type: ignore[attr-defined]
    if not claimed:
        return []
    rows = await session.exec(
        select(Message)
        .where(col(Message.id).in_(claimed))
        .order_by(col(Message.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def renew_message_lease(
    session: AsyncSession, message_id: str, lease: datetime, now: datetime, lease_until: datetime
) -> bool:
    """Extend this sender's lease on a message; False when it ran out or another sender has it."""
    result = await session.exec(
        update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == "sending",
            col(Message.due_at) == lease,
            col(Message.due_at) > now,
        )
        .values(due_at=lease_until)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def sent_since(session: AsyncSession, customer_id: str, channel: str, since: datetime) -> int:
    result = await session.exec(
        select(func.count()).where(
            Message.customer_id == customer_id,
            Message.channel == channel,
            col(Message.sent_at) >= since,
        )
    )
    return int(result.one())


async def unfinished_messages(session: AsyncSession, campaign_id: str) -> int:
    result = await session.exec(
        select(func.count()).where(
            Message.campaign_id == campaign_id,
            col(Message.status).in_(("held", "pending", "sending")),
        )
    )
    return int(result.one())


async def cancel_messages(session: AsyncSession, campaign_id: str) -> None:
    await session.exec(
        update(Message)
        .where(
            col(Message.campaign_id) == campaign_id, col(Message.status).in_(("held", "pending"))
        )
        .values(status="cancelled", reason="campaign cancelled")
    )


async def cancel_customer_messages(session: AsyncSession, customer_id: str) -> None:
    await session.exec(
        update(Message)
        .where(
            col(Message.customer_id) == customer_id,
            col(Message.status).in_(("held", "pending", "sending")),
        )
        .values(status="cancelled", reason="customer erased")
    )


async def message_by_offer_code(session: AsyncSession, code: str) -> Message | None:
    result = await session.exec(select(Message).where(Message.offer_code == code))
    return result.first()


async def clicks_between(
    session: AsyncSession, customer_id: str, start: datetime, end: datetime
) -> list[Click]:
    result = await session.exec(
        select(Click)
        .where(
            Click.customer_id == customer_id,
            col(Click.clicked_at) >= start,
            col(Click.clicked_at) <= end,
        )
        .order_by(col(Click.clicked_at), col(Click.id))
    )
    return list(result.all())


async def conversion_for_order(session: AsyncSession, order_key: str) -> Conversion | None:
    result = await session.exec(select(Conversion).where(Conversion.order_key == order_key))
    return result.first()


async def campaign_funnel(session: AsyncSession, campaign_id: str) -> list[dict[str, Any]]:
    """Per variant: messages by status and how many were delivered, opened, clicked, redeemed."""
    m = MESSAGES.c
    result = await _rows(
        session,
        sa_select(
            m.variant,
            m.status,
            func.count(),
            func.count(m.delivered_at),
            func.count(m.opened_at),
            func.count(m.clicked_at),
            func.count(m.redeemed_at),
        )
        .where(m.campaign_id == campaign_id)
        .group_by(m.variant, m.status),
    )
    return [
        {
            "variant": variant,
            "status": status,
            "count": int(count),
            "delivered": int(delivered),
            "opened": int(opened),
            "clicked": int(clicked),
            "redeemed": int(redeemed),
        }
        for variant, status, count, delivered, opened, clicked, redeemed in result
    ]


async def campaign_conversions(
    session: AsyncSession, campaign_id: str
) -> list[tuple[str | None, int, Decimal]]:
    """Per variant: converted messages and attributed revenue."""
    result = await session.exec(
        select(
            Conversion.variant,
            func.count(func.distinct(Conversion.message_id)),
            func.coalesce(func.sum(Conversion.revenue), 0),
        )
        .where(Conversion.campaign_id == campaign_id)
        .group_by(col(Conversion.variant))
    )
    return [(variant, int(n), Decimal(str(revenue))) for variant, n, revenue in result.all()]


async def variant_results(
    session: AsyncSession, campaign_id: str
) -> dict[str, tuple[int, int, int]]:
    """Per variant of the test phase: sent, clicked and converted messages."""
    m = MESSAGES.c
    sent = await session.exec(
        select(m.variant, func.count(m.sent_at), func.count(m.clicked_at))
        .where(m.campaign_id == campaign_id, m.variant.is_not(None))
        .group_by(m.variant)
    )
    results = {variant: (int(s), int(c), 0) for variant, s, c in sent.all()}
    for variant, converted, _revenue in await campaign_conversions(session, campaign_id):
        if variant in results:
            s, c, _ = results[variant]
            results[variant] = (s, c, converted)
    return results


# --- journeys -----------------------------------------------------------------------------------


async def insert_journey_states(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    table = JourneyState.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), BULK):
        await session.exec(insert(table), params=rows[start : start + BULK])


async def get_journey_state(
    session: AsyncSession, journey_id: str, customer_id: str
) -> JourneyState | None:
    return await session.get(JourneyState, (journey_id, customer_id))


async def journey_states_of(session: AsyncSession, customer_id: str) -> list[JourneyState]:
    result = await session.exec(select(JourneyState).where(JourneyState.customer_id == customer_id))
    return list(result.all())


async def stop_timers(
    session: AsyncSession, journey_ids: Sequence[str], customer_ids: Sequence[str], now: datetime
) -> None:
    """Disarm the pending timers of these customers in these journeys."""
    if not journey_ids:
        return
    j = JOURNEY_STATES.c
    for chunk in _chunks(customer_ids):
        await session.exec(
            update(JOURNEY_STATES)
            .where(j.journey_id.in_(journey_ids), j.customer_id.in_(chunk), j.due_at.is_not(None))
            .values(due_at=None, updated_at=now)
        )


async def due_journey_states(
    session: AsyncSession, now: datetime, limit: int
) -> list[JourneyState]:
    """Due timers, locked for this scheduler: another one skips them (SKIP LOCKED)."""
    result = await session.exec(
        select(JourneyState)
        .where(col(JourneyState.due_at).is_not(None), col(JourneyState.due_at) <= now)
        .order_by(
            col(JourneyState.due_at), col(JourneyState.journey_id), col(JourneyState.customer_id)
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(result.all())


async def claim_journey_state(session: AsyncSession, state: JourneyState, due_at: datetime) -> bool:
    """Take a due timer for this caller: it fires once even with two schedulers."""
    result = await session.exec(
        update(JourneyState)
        .where(
            col(JourneyState.journey_id) == state.journey_id,
            col(JourneyState.customer_id) == state.customer_id,
            col(JourneyState.due_at) == due_at,
        )
        .values(due_at=None, fired_cycle=state.cycle)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


# --- unsubscribes ------------------------------------------------------------------------------


async def claim_unsynced_unsubscribes(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[Unsubscribe]:
    """Unsubscribes due for profile, leased to this worker until `lease_until` (SKIP LOCKED)."""
    due = (
        select(col(Unsubscribe.id))
        .where(col(Unsubscribe.synced_at).is_(None), col(Unsubscribe.next_attempt_at) <= now)
        .order_by(col(Unsubscribe.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.exec(
        update(Unsubscribe)
        .where(col(Unsubscribe.id).in_(due.scalar_subquery()))
        .values(next_attempt_at=lease_until)
        .returning(col(Unsubscribe.id))
    )
    claimed = list(result.scalars().all())  # type: ignore[attr-defined]
    if not claimed:
        return []
    rows = await session.exec(
        select(Unsubscribe)
        .where(col(Unsubscribe.id).in_(claimed))
        .order_by(col(Unsubscribe.id))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


# --- analytics ---------------------------------------------------------------------------------


async def acquisition_channels(
    session: AsyncSession,
) -> list[tuple[str | None, int, int, int, Any]]:
    """Per acquisition channel: customers, buyers, orders and revenue."""
    a = AUDIENCE.c
    result = await _rows(
        session,
        sa_select(
            a.acquisition_channel,
            func.count(),
            func.count(case((a.orders > 0, 1))),
            func.coalesce(func.sum(a.orders), 0),
            func.coalesce(func.sum(a.revenue), 0),
        ).group_by(a.acquisition_channel),
    )
    return [tuple(row) for row in result]  # type: ignore[misc]


async def campaign_totals(session: AsyncSession) -> list[tuple[str, str, str, int, int, Any]]:
    """Per campaign: name, channel, messages sent, converted messages and attributed revenue."""
    sent = (
        select(Message.campaign_id, func.count(col(Message.sent_at)).label("sent"))
        .group_by(col(Message.campaign_id))
        .subquery()
    )
    converted = (
        select(
            Conversion.campaign_id,
            func.count(func.distinct(Conversion.message_id)).label("converted"),
            func.sum(Conversion.revenue).label("revenue"),
        )
        .group_by(col(Conversion.campaign_id))
        .subquery()
    )
    result = await _rows(
        session,
        sa_select(
            col(Campaign.id),
            col(Campaign.name),
            col(Campaign.channel),
            func.coalesce(sent.c.sent, 0),
            func.coalesce(converted.c.converted, 0),
            func.coalesce(converted.c.revenue, 0),
        )
        .outerjoin(sent, sent.c.campaign_id == Campaign.id)
        .outerjoin(converted, converted.c.campaign_id == Campaign.id)
        .order_by(col(Campaign.created_at)),
    )
    return [tuple(row) for row in result]  # type: ignore[misc]


# --- one customer's rows: export, erasure, merge ----------------------------------------------

# Tables keyed by customer id, with the column that holds it.
CUSTOMER_TABLES: dict[str, type[SQLModel]] = {
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


async def rows_of(session: AsyncSession, model: type[SQLModel], customer_id: str) -> list[Any]:
    column = model.__table__.c.customer_id  # type: ignore[attr-defined]
    result = await session.exec(select(model).where(column == customer_id))  # type: ignore[call-overload]
    return list(result.all())


async def delete_rows(session: AsyncSession, model: type[SQLModel], customer_id: str) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(delete(table).where(table.c.customer_id == customer_id))


async def update_rows(
    session: AsyncSession, model: type[SQLModel], of: str, values: dict[str, Any]
) -> None:
    """Set `values` on every row of the customer `of`."""
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(update(table).where(table.c.customer_id == of).values(**values))


async def campaigns_listing(session: AsyncSession, customer_ids: Sequence[str]) -> list[Campaign]:
    """Campaigns whose stored audience list names one of these customers."""
    if not customer_ids:
        return []
    # The list is JSON: its text holds each id in quotes. LIKE narrows, Python decides.
    listed = cast(col(Campaign.customer_ids), Text)
    query = select(Campaign).where(
        col(Campaign.customer_ids).is_not(None),
        or_(*(listed.contains(f'"{cid}"', autoescape=True) for cid in customer_ids)),
    )
    wanted = set(customer_ids)
    return [c for c in (await session.exec(query)).all() if wanted & set(c.customer_ids or [])]


async def repoint_aliases(session: AsyncSession, old_id: str, new_id: str) -> None:
    await session.exec(
        update(Alias).where(col(Alias.customer_id) == old_id).values(customer_id=new_id)
    )
