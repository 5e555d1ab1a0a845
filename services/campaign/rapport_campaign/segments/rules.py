"""The segment rule language: JSON rules, their validation and what they depend on.

A rule is one JSON object with exactly one of these keys:

- `all` / `any`: a list of rules that must all / at least one match; `not`: a rule that must not.
- `attribute`: a profile field (`country`, `city`, `gender`, `age`, ...) compared with `op`/`value`.
- `trait`: a custom trait from profile's identify calls (`plan`, `seats`, ...): text or number.
- `metric`: a value campaign computes from orders and points (`orders`, `revenue`, `tier`,
  `recency_score`, `lifetime_value`, ...), compared with `op`/`value`.
- `event`: behaviour, "at least N events of this type in the last D days where properties match".
- `segment`: membership of another segment.
- `consent`: a granted marketing consent on a channel.

`sql.rule_condition` turns a rule into one SQL condition, so the same rule counts everyone
at once (creation, preview) or tests one customer when an event arrives.
"""

import math
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, TypeAlias, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from rapport_events import value
from rapport_events.types import Channel

MAX_NODES = 200
MAX_DEPTH = 12
MAX_LIST = 1000
# Bounds that keep every comparison inside what the database and the calendar can hold:
# dates a century back, ages a person can have, numbers that fit NUMERIC(20, 6).
MAX_DAYS = 36_500
MAX_AGE = 150
MAX_NUMBER = 10**12

Op = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in",
    "contains", "starts_with", "exists", "missing",
]  # fmt: skip
# How a field compares: text (case-insensitive), number, a timestamp read as "days since",
# a birth date read as age in whole years, an RFM score (1-5), or the ordered tier.
Kind = Literal["text", "number", "days", "age", "score", "tier"]

OPS: dict[str, frozenset[str]] = {
    "text": frozenset({"eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "missing"}),
    "number": frozenset(
        {"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "exists", "missing"}
    ),
    "days": frozenset({"gt", "gte", "lt", "lte", "between", "exists", "missing"}),
    "age": frozenset({"eq", "gt", "gte", "lt", "lte", "between", "exists", "missing"}),
    "score": frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in"}),
    "tier": frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"}),
}

# Tiers and RFM scores are profile's customer value (rapport_events.value): fixed cut-offs,
# so a score changes only with the customer's own orders (and the clock), never because of
# other customers: membership stays cheap to keep current.
TIERS = value.TIERS
RECENCY_SCORE_DAYS = value.RECENCY_SCORE_DAYS
FREQUENCY_SCORE_ORDERS = value.FREQUENCY_SCORE_ORDERS
MONETARY_SCORE_REVENUE = value.MONETARY_SCORE_REVENUE

AttributeName = Literal[
    "email", "first_name", "last_name", "phone", "gender", "country", "city",
    "income_band", "education", "acquisition_channel", "age", "days_since_registration",
]  # fmt: skip
ATTRIBUTES: dict[str, Kind] = {
    "email": "text",
    "first_name": "text",
    "last_name": "text",
    "phone": "text",
    "gender": "text",
    "country": "text",
    "city": "text",
    "income_band": "text",
    "education": "text",
    "acquisition_channel": "text",
    "age": "age",
    "days_since_registration": "days",
}

MetricName = Literal[
    "orders", "revenue", "average_order_value", "lifetime_value", "tier",
    "recency_days", "recency_score", "frequency_score", "monetary_score",
    "loyalty_points", "nps", "days_since_activity",
]  # fmt: skip
METRICS: dict[str, Kind] = {
    "orders": "number",
    "revenue": "number",
    "average_order_value": "number",
    "lifetime_value": "number",
    "tier": "tier",
    "recency_days": "days",
    "recency_score": "score",
    "frequency_score": "score",
    "monetary_score": "score",
    "loyalty_points": "number",
    "nps": "number",
    "days_since_activity": "days",
}

EventName = Literal[
    "order.completed", "cart.updated", "interaction.tracked",
    "survey.completed", "loyalty.points.earned",
]  # fmt: skip
ITEM_PROPERTIES: dict[str, tuple[str, Kind]] = {
    "product_id": ("product_id", "text"),
    "product_model": ("product_model", "text"),
    "product_name": ("name", "text"),
    "category": ("category", "text"),
    "price": ("price", "number"),
    "quantity": ("quantity", "number"),
}
# property name -> (activity column, kind); item properties match one line of the order/cart.
EVENT_PROPERTIES: dict[str, dict[str, tuple[str, Kind]]] = {
    "order.completed": {
        "order_id": ("ref", "text"),
        "revenue": ("value", "number"),
        "coupon": ("coupon", "text"),
        "sales_channel": ("channel", "text"),
        "currency": ("currency", "text"),
    },
    "cart.updated": {
        "cart_id": ("ref", "text"),
        "action": ("kind", "text"),
        "value": ("value", "number"),
        "currency": ("currency", "text"),
    },
    "interaction.tracked": {
        "kind": ("kind", "text"),
        "name": ("name", "text"),
        "url": ("url", "text"),
        "search_query": ("search_query", "text"),
        "utm_source": ("channel", "text"),
    },
    "survey.completed": {"survey_id": ("ref", "text"), "nps_score": ("value", "number")},
    "loyalty.points.earned": {
        "program": ("kind", "text"),
        "points": ("value", "number"),
        "reason": ("name", "text"),
    },
}
HAS_ITEMS = frozenset({"order.completed", "cart.updated"})

# The kinds of event that can change a condition's result (segments skip the others).
EVENT_KINDS: dict[str, str] = {
    "order.completed": "order",
    "cart.updated": "cart",
    "interaction.tracked": "interaction",
    "survey.completed": "survey",
    "loyalty.points.earned": "loyalty",
}
ACTIVITY_KINDS = frozenset({"profile", "order", "cart", "interaction", "survey"})
METRIC_KINDS: dict[str, frozenset[str]] = {
    "loyalty_points": frozenset({"loyalty"}),
    "nps": frozenset({"survey"}),
    "days_since_activity": ACTIVITY_KINDS,
}
TIME_DEPENDENT_FIELDS = frozenset(
    {"age", "days_since_registration", "recency_days", "recency_score", "days_since_activity"}
)


def _check_comparison(kind: Kind, op: str, value: Any, field: str) -> Any:
    """The value, normalised; ValueError with a clear message when it does not fit."""
    if op not in OPS[kind]:
        allowed = ", ".join(sorted(OPS[kind]))
        raise ValueError(f"{field} does not support op '{op}'; use one of: {allowed}")
    if op in ("exists", "missing"):
        if value is not None:
            raise ValueError(f"op '{op}' takes no value")
        return None
    if value is None:
        raise ValueError(f"op '{op}' needs a value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise ValueError(f"op '{op}' needs a non-empty list of at most {MAX_LIST} values")
        return [_scalar(kind, item, field) for item in value]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("op 'between' needs a list of two values [low, high]")
        low, high = (_scalar(kind, item, field) for item in value)
        if low > high:
            raise ValueError("op 'between' needs low <= high")
        return [low, high]
    return _scalar(kind, value, field)


def _scalar(kind: Kind, value: Any, field: str) -> Any:
    if kind == "text":
        if not isinstance(value, str) or len(value) > 500:
            raise ValueError(f"{field} compares with text (at most 500 characters)")
        return value
    if kind == "tier":
        if value not in TIERS:
            raise ValueError(f"{field} is one of {', '.join(TIERS)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{field} compares with a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number) or abs(number) >= MAX_NUMBER:
        raise ValueError(
            f"{field} compares with a number between -{MAX_NUMBER:,} and {MAX_NUMBER:,}"
        )
    if kind in ("age", "score") and int(value) != value:
        raise ValueError(f"{field} compares with a whole number")
    if kind == "score" and not 1 <= value <= 5:
        raise ValueError(f"{field} is a score from 1 to 5")
    if kind in ("days", "age") and value < 0:
        raise ValueError(f"{field} cannot be negative")
    if kind == "days" and value > MAX_DAYS:
        raise ValueError(f"{field} counts at most {MAX_DAYS} days")
    if kind == "age" and value > MAX_AGE:
        raise ValueError(f"{field} is an age of at most {MAX_AGE} years")
    return int(value) if kind in ("age", "score") else value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AllOf(_Node):
    """Every rule in the list matches."""

    all: list["Rule"] = Field(min_length=1, max_length=100)


class AnyOf(_Node):
    """At least one rule in the list matches."""

    any: list["Rule"] = Field(min_length=1, max_length=100)


class Not(_Node):
    """The rule does not match."""

    not_: "Rule" = Field(alias="not")


class AttributeCondition(_Node):
    """A profile field, e.g. {"attribute": "country", "op": "in", "value": ["FR", "BE"]}."""

    attribute: AttributeName
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _comparable(self) -> Self:
        value = _check_comparison(ATTRIBUTES[self.attribute], self.op, self.value, self.attribute)
        object.__setattr__(self, "value", value)
        return self


# Trait names a rule may address (profile keeps any name; rules address plain ones).
TRAIT_NAME = r"^[A-Za-z0-9_-]{1,100}$"
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})


def trait_kind(op: str, value: Any) -> Kind:
    """How a trait compares: as a number when the op or the value is numeric, else as text."""
    items = value if isinstance(value, list) else [value]
    numeric = all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in items)
    return "number" if op in NUMBER_OPS or (value is not None and numeric) else "text"


class TraitCondition(_Node):
    """A custom trait, e.g. {"trait": "plan", "op": "eq", "value": "pro"}; a trait that
    holds another type than the comparison (text against a number) does not match."""

    trait: str = Field(pattern=TRAIT_NAME)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _comparable(self) -> Self:
        kind = trait_kind(self.op, self.value)
        value = _check_comparison(kind, self.op, self.value, f"trait '{self.trait}'")
        object.__setattr__(self, "value", value)
        return self

    @property
    def kind(self) -> Kind:
        return trait_kind(self.op, self.value)


class MetricCondition(_Node):
    """A computed metric, e.g. {"metric": "tier", "op": "gte", "value": "gold"}."""

    metric: MetricName
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _comparable(self) -> Self:
        value = _check_comparison(METRICS[self.metric], self.op, self.value, self.metric)
        object.__setattr__(self, "value", value)
        return self


class PropertyCondition(_Node):
    """A property of the event or of one of its product lines."""

    property: str = Field(min_length=1, max_length=64)
    op: Op = "eq"
    value: Any = None


class BehaviourCondition(_Node):
    """At least (or at most) N events of a type, in the last D days, whose properties match."""

    event: EventName
    at_least: int | None = Field(default=None, ge=0, le=100_000)
    at_most: int | None = Field(default=None, ge=0, le=100_000)
    within_days: float | None = Field(default=None, gt=0, le=MAX_DAYS)
    where: list[PropertyCondition] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _known_properties(self) -> Self:
        if self.at_least is None and self.at_most is None:
            object.__setattr__(self, "at_least", 1)
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError("at_least cannot be more than at_most")
        known = dict(EVENT_PROPERTIES[self.event])
        if self.event in HAS_ITEMS:
            known.update(ITEM_PROPERTIES)
        checked = []
        for condition in self.where:
            if condition.property not in known:
                names = ", ".join(sorted(known))
                raise ValueError(
                    f"{self.event} has no property '{condition.property}'; known: {names}"
                )
            kind = known[condition.property][1]
            value = _check_comparison(kind, condition.op, condition.value, condition.property)
            checked.append(condition.model_copy(update={"value": value}))
        object.__setattr__(self, "where", checked)
        return self


class SegmentCondition(_Node):
    """Membership of another segment, by id."""

    segment: str = Field(min_length=1, max_length=64)


class ConsentCondition(_Node):
    """A granted marketing consent on this channel."""

    consent: Channel


_TAGS = ("all", "any", "not", "attribute", "trait", "metric", "event", "segment", "consent")
_CLASS_TAGS: dict[type, str] = {
    AllOf: "all",
    AnyOf: "any",
    Not: "not",
    AttributeCondition: "attribute",
    TraitCondition: "trait",
    MetricCondition: "metric",
    BehaviourCondition: "event",
    SegmentCondition: "segment",
    ConsentCondition: "consent",
}


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [tag for tag in _TAGS if tag in value]
        return present[0] if len(present) == 1 else None
    return _CLASS_TAGS.get(type(value))


Rule: TypeAlias = Annotated[
    Union[  # noqa: UP007  (a discriminated union needs the Annotated members)
        Annotated[AllOf, Tag("all")],
        Annotated[AnyOf, Tag("any")],
        Annotated[Not, Tag("not")],
        Annotated[AttributeCondition, Tag("attribute")],
        Annotated[TraitCondition, Tag("trait")],
        Annotated[MetricCondition, Tag("metric")],
        Annotated[BehaviourCondition, Tag("event")],
        Annotated[SegmentCondition, Tag("segment")],
        Annotated[ConsentCondition, Tag("consent")],
    ],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "a rule is an object with exactly one of the keys "
            "all, any, not, attribute, trait, metric, event, segment, consent"
        ),
        custom_error_context={"keys": ", ".join(_TAGS)},
    ),
]

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()

RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)


def parse(data: Any) -> Rule:
    """A stored or posted rule as its model (raises pydantic.ValidationError)."""
    return RULE_ADAPTER.validate_python(data)


def dump(rule: Rule) -> dict[str, Any]:
    """The rule as JSON, the way it is stored and shown."""
    return RULE_ADAPTER.dump_python(rule, mode="json", by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


def children(rule: Rule) -> list[Rule]:
    if isinstance(rule, AllOf):
        return list(rule.all)
    if isinstance(rule, AnyOf):
        return list(rule.any)
    if isinstance(rule, Not):
        return [rule.not_]
    return []


def walk(rule: Rule) -> Iterator[Rule]:
    """Every node of the rule, depth first."""
    yield rule
    for child in children(rule):
        yield from walk(child)


def depth(rule: Rule) -> int:
    return 1 + max((depth(child) for child in children(rule)), default=0)


def references(rule: Rule) -> set[str]:
    """The segments this rule mentions directly."""
    return {node.segment for node in walk(rule) if isinstance(node, SegmentCondition)}


class Analysis(BaseModel):
    """What a rule depends on: the event kinds that can change it, and the clock."""

    relevance: frozenset[str]
    time_dependent: bool


def analyse(rule: Rule, referenced: Mapping[str, Analysis]) -> Analysis:
    """Relevance and time dependence of `rule`, given those of the segments it mentions."""
    kinds: set[str] = set()
    timed = False
    for node in walk(rule):
        if isinstance(node, AttributeCondition):
            kinds.add("profile")
            timed |= node.attribute in TIME_DEPENDENT_FIELDS
        elif isinstance(node, TraitCondition):
            kinds.add("profile")
        elif isinstance(node, MetricCondition):
            kinds |= METRIC_KINDS.get(node.metric, frozenset({"order"}))
            timed |= node.metric in TIME_DEPENDENT_FIELDS
        elif isinstance(node, BehaviourCondition):
            kinds.add(EVENT_KINDS[node.event])
            timed |= node.within_days is not None
        elif isinstance(node, ConsentCondition):
            kinds.add("consent")
        elif isinstance(node, SegmentCondition):
            other = referenced[node.segment]
            kinds |= other.relevance
            timed |= other.time_dependent
    return Analysis(relevance=frozenset(kinds), time_dependent=timed)
