"""The segment builder's form as campaign's rule language (README "Segment rules").

Each row is one condition on a field; rows left blank are skipped; the rows are
combined with `all` or `any`. Values are parsed for the field's kind: numbers for
metrics and ages, a comma-separated list for `in`/`not_in`, two numbers for `between`.
"""

from dataclasses import dataclass
from typing import Any

TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "missing")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in")
# field -> (rule key, kind)
FIELDS: dict[str, tuple[str, str]] = {
    "country": ("attribute", "text"),
    "city": ("attribute", "text"),
    "gender": ("attribute", "text"),
    "income_band": ("attribute", "text"),
    "education": ("attribute", "text"),
    "acquisition_channel": ("attribute", "text"),
    "email": ("attribute", "text"),
    "age": ("attribute", "number"),
    "days_since_registration": ("attribute", "number"),
    "orders": ("metric", "number"),
    "revenue": ("metric", "number"),
    "lifetime_value": ("metric", "number"),
    "loyalty_points": ("metric", "number"),
    "recency_days": ("metric", "number"),
    "days_since_activity": ("metric", "number"),
    "tier": ("metric", "tier"),
    "consent": ("consent", "channel"),
}
TIERS = ("none", "bronze", "silver", "gold", "platinum")
CHANNELS = ("email", "sms", "push", "social")
MAX_ROWS = 5


class RuleError(ValueError):
    """The form does not make a rule; the message says which row and why."""


@dataclass(frozen=True)
class Row:
    field: str
    op: str
    value: str


def ops_for(field: str) -> tuple[str, ...]:
    kind = FIELDS[field][1]
    if kind == "text":
        return TEXT_OPS
    if kind == "channel":
        return ("granted",)
    return NUMBER_OPS


def rule_from(rows: list[Row], combine: str) -> dict[str, Any]:
    """The rule of the filled rows, or RuleError."""
    if combine not in ("all", "any"):
        raise RuleError("combine with all or any")
    conditions = [
        _condition(number, row) for number, row in enumerate(rows, 1) if row.field.strip()
    ]
    if not conditions:
        raise RuleError("add at least one condition")
    return conditions[0] if len(conditions) == 1 else {combine: conditions}


def _condition(number: int, row: Row) -> dict[str, Any]:
    if row.field not in FIELDS:
        raise RuleError(f"condition {number}: no field {row.field!r}")
    key, kind = FIELDS[row.field]
    if kind == "channel":
        if row.value not in CHANNELS:
            raise RuleError(f"condition {number}: consent on one of {', '.join(CHANNELS)}")
        return {"consent": row.value}
    if row.op not in ops_for(row.field):
        raise RuleError(f"condition {number}: {row.field} cannot use {row.op!r}")
    condition: dict[str, Any] = {key: row.field, "op": row.op}
    if row.op not in ("exists", "missing"):
        condition["value"] = _value(number, kind, row.op, row.value)
    return condition


def _value(number: int, kind: str, op: str, raw: str) -> Any:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise RuleError(f"condition {number}: a value is needed")
    parse = _parser(number, kind)
    if op in ("in", "not_in"):
        return [parse(item) for item in items]
    if op == "between":
        if len(items) != 2:
            raise RuleError(f"condition {number}: between takes two values, like 25, 34")
        return [parse(item) for item in items]
    if len(items) != 1:
        raise RuleError(f"condition {number}: one value, or use in")
    return parse(items[0])


def _parser(number: int, kind: str) -> Any:
    def parse(item: str) -> Any:
        if kind == "number":
            try:
                value = float(item)
            except ValueError:
                raise RuleError(f"condition {number}: {item!r} is not a number") from None
            return int(value) if value.is_integer() else value
        if kind == "tier":
            if item.lower() not in TIERS:
                raise RuleError(f"condition {number}: tier is one of {', '.join(TIERS)}")
            return item.lower()
        return item

    return parse
