"""Traits of identify and group calls: the customer columns they fill, and custom traits
kept as a bounded JSON map."""

import contextlib
import json
from datetime import date
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError

from rapport_events.base import utcnow
from rapport_profile.customers.models import E164
from rapport_profile.tracking.parsing import BadTrackingCall, Message

_email = TypeAdapter(EmailStr)


# The column widths of the customer fields that traits fill.
TRAIT_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "gender": 32,
    "income_band": 32,
    "education": 64,
    "city": 100,
    "country": 2,
}


# Traits with no column of their own are kept as a JSON map on the customer (and on an
# account), within these bounds; a call that would pass them is refused (400).
CUSTOM_TRAITS_MAX_KEYS = 100


CUSTOM_TRAIT_KEY_MAX_CHARS = 100


CUSTOM_TRAITS_MAX_BYTES = 16 * 1024


# The traits that fill customer columns (see _traits); every other trait is custom.
COLUMN_TRAITS = frozenset(
    {
        "address",
        "birth_date",
        "birthday",
        "city",
        "country",
        "education",
        "email",
        "externalIds",
        "external_ids",
        "firstName",
        "first_name",
        "gender",
        "incomeBand",
        "income_band",
        "lastName",
        "last_name",
        "name",
        "phone",
        "socialHandles",
        "social_handles",
    }
)


def all_traits(message: Message) -> dict[str, Any]:
    """An identify's traits: `context.traits` (where RudderStack's SDKs put them), then
    top-level `traits` (Segment's), which win where both name a trait."""
    context = message.context.get("traits")
    return {**(context if isinstance(context, dict) else {}), **message.traits}


def custom_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """The traits that no customer column holds."""
    return {key: value for key, value in traits.items() if key not in COLUMN_TRAITS}


def merge_traits(kept: dict[str, Any], new: dict[str, Any], where: str) -> dict[str, Any]:
    """`kept` updated with `new` (null removes a trait), refused past the documented bounds."""
    merged = dict(kept)
    for key, value in new.items():
        if len(key) > CUSTOM_TRAIT_KEY_MAX_CHARS:
            raise BadTrackingCall(
                f"{where}: trait names are at most {CUSTOM_TRAIT_KEY_MAX_CHARS} characters"
            )
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > CUSTOM_TRAITS_MAX_KEYS:
        raise BadTrackingCall(f"{where}: at most {CUSTOM_TRAITS_MAX_KEYS} custom traits are kept")
    if len(json.dumps(merged, default=str).encode()) > CUSTOM_TRAITS_MAX_BYTES:
        raise BadTrackingCall(
            f"{where}: custom traits are kept up to {CUSTOM_TRAITS_MAX_BYTES // 1024} KB of JSON"
        )
    # Stored as JSON: what does not survive a round trip (dates) is kept as its text.
    return json.loads(json.dumps(merged, default=str))


def _traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Segment's reserved traits as customer fields; values that do not fit are skipped."""
    address: dict[str, Any] = traits["address"] if isinstance(traits.get("address"), dict) else {}
    first, last = (
        traits.get("firstName", traits.get("first_name")),
        traits.get("lastName", traits.get("last_name")),
    )
    if (first is None or last is None) and isinstance(traits.get("name"), str):
        parts = traits["name"].strip().split(" ", 1)
        first = first or parts[0]
        last = last or (parts[1] if len(parts) > 1 else None)
    found: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "gender": traits.get("gender"),
        "income_band": traits.get("income_band", traits.get("incomeBand")),
        "education": traits.get("education"),
        "city": address.get("city", traits.get("city")),
        "country": address.get("country", traits.get("country")),
    }
    fields: dict[str, Any] = {}
    for name, value in found.items():
        if isinstance(value, str) and value.strip() and len(value.strip()) <= TRAIT_LIMITS[name]:
            fields[name] = value.strip()
    if "country" in fields:
        country = fields.pop("country")
        if len(country) == 2 and country.isalpha():
            fields["country"] = country.upper()
    email = traits.get("email")
    if isinstance(email, str):
        with contextlib.suppress(ValidationError):
            fields["email"] = _email.validate_python(email.strip()).lower()
    phone = traits.get("phone")
    if isinstance(phone, str) and E164.match(phone.strip()):
        fields["phone"] = phone.strip()
    birthday = traits.get("birthday", traits.get("birth_date"))
    if isinstance(birthday, str):
        try:
            born = date.fromisoformat(birthday[:10])
            if born <= utcnow().date():
                fields["birth_date"] = born
        except ValueError:
            pass
    for name, key in (("external_ids", "externalIds"), ("social_handles", "socialHandles")):
        value = traits.get(name, traits.get(key))
        if isinstance(value, dict):
            cleaned = {str(k): str(v) for k, v in value.items() if v not in (None, "")}
            if cleaned:
                fields[name] = cleaned
    return fields
