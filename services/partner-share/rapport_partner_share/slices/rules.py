"""The five shareable slices: what each holds, how it is filled and kept current, what it shows.

Pure functions over plain dicts, so the rule "a partner sees only consented
fields" is one whitelist (`SLICE_FIELDS`) applied to every reply.
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from rapport_events.types import Slice
from rapport_partner_share.shared import iso

SLICES: tuple[Slice, ...] = get_args(Slice)

# Every field a partner may ever see, by slice. A stored key not listed here
# (bookkeeping such as the ids of counted orders) is never disclosed.
SLICE_FIELDS: dict[str, frozenset[str]] = {
    "contact": frozenset({"email", "phone", "first_name", "last_name"}),
    "demographics": frozenset(
        {"birth_year", "age_band", "gender", "income_band", "education", "country", "city"}
    ),
    "purchase_summary": frozenset({"orders_count", "revenue", "last_order_at", "counted_since"}),
    "segments": frozenset({"segments"}),
    "loyalty": frozenset({"programs"}),
}

# Profile attributes, by the slice they belong to (for fills and customer.updated).
PROFILE_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("email", "phone", "first_name", "last_name"),
    "demographics": ("birth_date", "gender", "income_band", "education", "country", "city"),
}
# Slices whose starting value is asked of profile over HTTP once consent is given.
FILLED_FROM_PROFILE = frozenset({"contact", "demographics", "purchase_summary"})
# Slices that start empty at consent and grow from the events seen after it; the
# purchase summary takes profile's totals instead when profile has them.
STARTS_EMPTY = frozenset({"purchase_summary", "segments", "loyalty"})

AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"))
_REMEMBERED_IDS = 500  # ids of counted orders/credits kept to make replays harmless


def _parse_moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _birth_year(value: Any) -> int | None:
    if isinstance(value, date):
        return value.year
    if isinstance(value, str) and len(value) >= 4 and value[:4].isdigit():
        return int(value[:4])
    return None


def age_band(birth_year: int | None, today: date | None = None) -> str | None:
    """A coarse age band from a birth year, so partners need not see the birth date."""
    if birth_year is None:
        return None
    age = (today or datetime.now(UTC).date()).year - birth_year
    for upper, band in AGE_BANDS:
        if age < upper:
            return band
    return "55-64" if age < 65 else "65+"


def _profile_value(slice_name: str, field: str, value: Any) -> dict[str, Any]:
    """One profile attribute as the slice stores it."""
    if slice_name == "demographics" and field == "birth_date":
        return {"birth_year": _birth_year(value)}
    if isinstance(value, str | int | float | bool) or value is None:
        return {field: value}
    return {field: str(value)}


def from_profile(slice_name: str, customer: Mapping[str, Any]) -> dict[str, Any]:
    """The contact or demographics slice from profile's customer record."""
    data: dict[str, Any] = {}
    for field in PROFILE_FIELDS[slice_name]:
        data.update(_profile_value(slice_name, field, customer.get(field)))
    return data


def apply_changes(
    slice_name: str, data: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The slice after a customer.updated; None when nothing in it changed."""
    updated = dict(data)
    for field in PROFILE_FIELDS.get(slice_name, ()):
        if field in changes:
            updated.update(_profile_value(slice_name, field, changes[field]))
    return updated if updated != dict(data) else None


def empty(slice_name: str, since: datetime) -> dict[str, Any]:
    """The value of an event-fed slice at the moment consent is given."""
    if slice_name == "purchase_summary":
        return {
            "orders_count": 0,
            "revenue": {},
            "last_order_at": None,
            "counted_since": iso(since),
            "_orders": [],
        }
    if slice_name == "segments":
        return {"members": {}, "_changed": {}}
    if slice_name == "loyalty":
        return {"programs": {}, "_credits": []}
    raise ValueError(f"{slice_name} is filled from profile, not from events")


def _first(metrics: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if metrics.get(name) is not None:
            return metrics[name]
    return None


def from_metrics(metrics: Mapping[str, Any], as_of: datetime) -> dict[str, Any] | None:
    """A purchase summary from profile's customer metrics; None when they hold no totals."""
    orders = _first(metrics, "orders_count", "order_count", "orders", "total_orders")
    revenue = _first(metrics, "revenue", "total_revenue", "revenue_total")
    if isinstance(orders, Mapping):  # {"count": .., "revenue": ..}
        revenue = revenue if revenue is not None else orders.get("revenue")
        orders = orders.get("count")
    try:
        count = int(orders)
        amount = Decimal(str(revenue)) if revenue is not None else Decimal(0)
    except (TypeError, ValueError, InvalidOperation):
        return None
    last = _parse_moment(_first(metrics, "last_order_at", "last_order_date", "last_order"))
    currency = str(_first(metrics, "currency") or "EUR")
    return {
        "orders_count": count,
        "revenue": {currency: str(amount)} if count or amount else {},
        "last_order_at": iso(last) if last else None,
        "counted_since": None,  # totals over the customer's whole history
        "_orders": [],
        "_baseline_at": iso(as_of),
    }


def count_order(
    data: Mapping[str, Any],
    *,
    order_id: str,
    revenue: Decimal,
    currency: str,
    occurred_at: datetime,
) -> dict[str, Any] | None:
    """The purchase summary after one order; None for an order already counted or too old."""
    # Orders before consent (or already in profile's totals) are not ours to count.
    floor = _parse_moment(data.get("_baseline_at")) or _parse_moment(data.get("counted_since"))
    if (floor is not None and occurred_at < floor) or order_id in data.get("_orders", []):
        return None
    totals = dict(data.get("revenue") or {})
    totals[currency] = str(Decimal(totals.get(currency, "0")) + revenue)
    last = _parse_moment(data.get("last_order_at"))
    return {
        **data,
        "orders_count": int(data.get("orders_count") or 0) + 1,
        "revenue": totals,
        "last_order_at": iso(max(last, occurred_at) if last else occurred_at),
        "_orders": [*data.get("_orders", []), order_id][-_REMEMBERED_IDS:],
    }


def change_segment(
    data: Mapping[str, Any],
    *,
    segment_id: str,
    name: str,
    entered: bool,
    occurred_at: datetime,
) -> dict[str, Any] | None:
    """The segments slice after an entry or exit; None when the change is stale or a no-op."""
    changed = dict(data.get("_changed") or {})
    previous = _parse_moment(changed.get(segment_id))
    if previous is not None and occurred_at <= previous:
        return None  # an older change arriving late must not undo a newer one
    members = dict(data.get("members") or {})
    if entered:
        members[segment_id] = {"name": name, "since": iso(occurred_at)}
    else:
        members.pop(segment_id, None)
    changed[segment_id] = iso(occurred_at)
    return {**data, "members": members, "_changed": changed}


def credit_points(
    data: Mapping[str, Any],
    *,
    credit_id: str,
    program: str,
    points: int,
    balance: int | None,
    occurred_at: datetime,
) -> dict[str, Any] | None:
    """The loyalty slice after points were earned; None for a credit already applied."""
    if credit_id in data.get("_credits", []):
        return None
    programs = dict(data.get("programs") or {})
    current = dict(programs.get(program) or {"points_earned": 0, "balance": None})
    current["points_earned"] = int(current["points_earned"]) + points
    if balance is not None:
        current["balance"] = balance
    current["updated_at"] = iso(occurred_at)
    programs[program] = current
    return {
        **data,
        "programs": programs,
        "_credits": [*data.get("_credits", []), credit_id][-_REMEMBERED_IDS:],
    }


def view(slice_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a partner sees of one stored slice: whitelisted fields only."""
    shown: dict[str, Any]
    if slice_name == "demographics":
        shown = {**data, "age_band": age_band(data.get("birth_year"))}
    elif slice_name == "segments":
        members = data.get("members") or {}
        shown = {
            "segments": [
                {"segment_id": key, "name": value["name"], "since": value["since"]}
                for key, value in sorted(members.items())
            ]
        }
    elif slice_name == "loyalty":
        programs = data.get("programs") or {}
        shown = {"programs": [{"program": key, **value} for key, value in sorted(programs.items())]}
    else:
        shown = dict(data)
    allowed = SLICE_FIELDS[slice_name]
    return {key: value for key, value in shown.items() if key in allowed}


def disclosed_fields(slices: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """`slice.field` names that carried a value in a reply, for the audit ledger."""
    return sorted(
        f"{slice_name}.{field}"
        for slice_name, shown in slices.items()
        for field, value in shown.items()
        if value not in (None, [], {})
    )
