"""A segment rule as SQL: one condition on campaign_audience rows, per database."""

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float, String
from sqlmodel import select

from rapport_campaign.audience.store import ACTIVITY, AUDIENCE, CONSENTS, ITEMS
from rapport_campaign.segments import rules

NUMBER = Numeric(20, 6)


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
