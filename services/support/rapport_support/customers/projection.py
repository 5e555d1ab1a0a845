"""What support learns from profile's events: who customers are, their social handles, what
they agreed to, and their value.

The hot types arrive in runs (`@batch` handlers in `handlers`). A run reads the state it
needs with one `IN` query per table, applies its events in log order to that state in
memory, and writes each table with multi-row statements, so its cost does not grow by a
statement per event. Merges and erasures are rare and move many tables: they stay one
event at a time, on the ORM (`rapport_support.lifecycle`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.consumer import batch
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
)
from rapport_support.customers import store
from rapport_support.customers.models import (
    HandleKey,
    SupportConsent,
    SupportCustomer,
    SupportHandle,
    handle_key,
)
from rapport_support.customers.service import resolve_all
from rapport_support.mentions.projection import link_claimed_mentions
from rapport_support.settings import Settings
from rapport_support.shared import aware, clip

PROFILE_FIELDS = {
    "email": 320,
    "phone": 64,
    "first_name": 100,
    "last_name": 100,
    "country": 64,
    "city": 128,
}
REQUIRED_FIELDS = ("email", "first_name", "last_name")
CUSTOMER_COLUMNS = tuple(SupportCustomer.model_fields)
VALUE_COLUMNS = ("tier", "orders", "revenue", "lifetime_value")
CONSENT_COLUMNS = ("channel", "partner_id", "slices", "granted", "version", "source", "changed_at")

Row = dict[str, Any]


# --- what a run needs to know --------------------------------------------------------------------


async def _customers(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, Row]:
    rows = await store.rows_where_in(session, SupportCustomer, "customer_id", customer_ids)
    return {row["customer_id"]: row for row in rows}


def after_bulk_writes(session: AsyncSession) -> None:
    """Forget the ORM copies of rows a run has just written with Core."""
    # Rows written with Core bypass the session: a merge later in this transaction must
    # not read an ORM copy loaded before them.
    session.expire_all()


# --- social handles ------------------------------------------------------------------------------


@dataclass
class Handles:
    """The handles a run touches: who holds each, and which change."""

    held: dict[HandleKey, tuple[str, str]]  # key -> (handle, customer_id)
    stored: set[HandleKey]
    claims: dict[HandleKey, str] = field(default_factory=dict)  # first claim of each key
    changed: set[HandleKey] = field(default_factory=set)

    def set(self, customer_id: str, handles: Mapping[str, Any]) -> None:
        """Replace the customer's handles; the newest claim to a handle wins."""
        wanted = _wanted_handles(handles)
        for key, (_, holder) in list(self.held.items()):
            if holder == customer_id and key not in wanted:
                del self.held[key]
                self.changed.add(key)
        for key, handle in wanted.items():
            self.held[key] = (handle, customer_id)
            self.changed.add(key)
            self.claims.setdefault(key, customer_id)


def _wanted_handles(handles: Mapping[str, Any]) -> dict[HandleKey, str]:
    return {
        (str(platform).lower()[:64], handle_key(str(handle))[:256]): str(handle)[:256]
        for platform, handle in handles.items()
        if handle and handle_key(str(handle))
    }


async def _handles(
    session: AsyncSession, customer_ids: set[str], handle_sets: Sequence[Mapping[str, Any]]
) -> Handles:
    keys = {key for handles in handle_sets for key in _wanted_handles(handles)}
    rows = await store.rows_where_in(session, SupportHandle, "customer_id", customer_ids)
    rows += await store.rows_where_pairs(session, SupportHandle, ("platform", "handle_key"), keys)
    held = {(r["platform"], r["handle_key"]): (r["handle"], r["customer_id"]) for r in rows}
    return Handles(held, set(held))


async def _write_handles(session: AsyncSession, settings: Settings, book: Handles) -> None:
    gone = [key for key in book.changed if key not in book.held and key in book.stored]
    await store.delete_pairs(session, SupportHandle, ("platform", "handle_key"), gone)
    rows = [
        {"platform": key[0], "handle_key": key[1], "handle": handle, "customer_id": holder}
        for key, (handle, holder) in book.held.items()
        if key in book.changed
    ]
    await store.upsert(
        session, SupportHandle, rows, ("platform", "handle_key"), update=("handle", "customer_id")
    )
    await link_claimed_mentions(session, settings, book.claims)


# --- customers -----------------------------------------------------------------------------------


def _registered_row(event: CustomerRegistered) -> dict[str, Any]:
    return {
        "customer_id": event.customer_id,
        "email": clip(event.email, 320) or "",
        "phone": clip(event.phone, 64),
        "first_name": clip(event.first_name, 100) or "",
        "last_name": clip(event.last_name, 100) or "",
        "country": clip(event.country, 64),
        "city": clip(event.city, 128),
        "tier": None,
        "registered_at": event.occurred_at,
        "updated_at": event.occurred_at,
    }


@batch
async def apply_registrations(
    session: AsyncSession, settings: Settings, events: Sequence[CustomerRegistered]
) -> None:
    """Remember newly registered customers for support; a replay changes nothing."""
    ids = {event.customer_id for event in events}
    owners = await resolve_all(session, ids)
    existing = await _customers(session, ids)
    new: dict[str, dict[str, Any]] = {}
    handle_sets: list[tuple[str, Mapping[str, Any]]] = []
    for event in events:
        customer_id = event.customer_id
        if owners[customer_id] != customer_id:
            continue  # erased, or a late registration of a duplicate already merged away
        if customer_id in existing or customer_id in new:
            continue  # later events may have changed the row; a replay must not undo them
        new[customer_id] = _registered_row(event)
        handle_sets.append((customer_id, event.social_handles))
    await store.upsert(session, SupportCustomer, list(new.values()), ("customer_id",))
    if handle_sets:
        book = await _handles(session, set(new), [handles for _, handles in handle_sets])
        for customer_id, handles in handle_sets:
            book.set(customer_id, handles)
        await _write_handles(session, settings, book)
    after_bulk_writes(session)


def _apply_changes(customer: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for name, length in PROFILE_FIELDS.items():
        if name not in changes:
            continue
        value = changes[name]
        if value is None and name in REQUIRED_FIELDS:
            continue
        customer[name] = clip(str(value), length) if value is not None else None


@batch
async def apply_customer_updates(
    session: AsyncSession, settings: Settings, events: Sequence[CustomerUpdated]
) -> None:
    """Copy the changed profile attributes (and handles) onto the projection."""
    resolved = await resolve_all(session, {event.customer_id for event in events})
    customers = await _customers(session, {o for o in resolved.values() if o is not None})
    changed: set[str] = set()
    handle_sets: list[tuple[str, Mapping[str, Any]]] = []
    for event in events:
        customer_id = resolved[event.customer_id]
        customer = customers.get(customer_id) if customer_id is not None else None
        if customer_id is None or customer is None:
            continue  # erased, or not registered here
        held_at = customer["updated_at"]
        if held_at is not None and aware(held_at) > event.occurred_at:
            continue  # an older change than the one already applied
        _apply_changes(customer, event.changes)
        customer["updated_at"] = event.occurred_at
        changed.add(customer_id)
        if isinstance(event.changes.get("social_handles"), dict):
            handle_sets.append((customer_id, event.changes["social_handles"]))
    rows = [customers[customer_id] for customer_id in sorted(changed)]
    await store.upsert(session, SupportCustomer, rows, ("customer_id",), update=CUSTOMER_COLUMNS)
    if handle_sets:
        owners = {customer_id for customer_id, _ in handle_sets}
        book = await _handles(session, owners, [handles for _, handles in handle_sets])
        for customer_id, handles in handle_sets:
            book.set(customer_id, handles)
        await _write_handles(session, settings, book)
    after_bulk_writes(session)


@batch
async def apply_values(session: AsyncSession, events: Sequence[CustomerValueChanged]) -> None:
    """Profile's customer value (tier, orders, revenue, lifetime value) onto the projection.

    Each event carries the whole value, so the last of a customer in the run wins.
    """
    owners = await resolve_all(session, {event.customer_id for event in events})
    latest: dict[str, CustomerValueChanged] = {}
    for event in events:
        customer_id = owners[event.customer_id]
        if customer_id is not None:
            latest[customer_id] = event
    customers = await _customers(session, latest)
    rows = []
    for customer_id, customer in sorted(customers.items()):
        event = latest[customer_id]
        customer.update(
            tier=event.tier,
            orders=event.orders,
            revenue=event.revenue,
            lifetime_value=event.lifetime_value,
        )
        rows.append(customer)
    await store.upsert(session, SupportCustomer, rows, ("customer_id",), update=VALUE_COLUMNS)
    after_bulk_writes(session)


# --- consents ------------------------------------------------------------------------------------


@batch
async def apply_consents(
    session: AsyncSession, events: Sequence[ConsentGranted | ConsentRevoked]
) -> None:
    """Keep the newest consent state per purpose and channel or partner."""
    owners = await resolve_all(session, {event.customer_id for event in events})
    ids = {owner for owner in owners.values() if owner is not None}
    stored = await store.rows_where_in(session, SupportConsent, "customer_id", ids)
    consents = {(row["customer_id"], row["purpose"], row["scope"]): row for row in stored}
    changed: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in events:
        customer_id = owners[event.customer_id]
        if customer_id is None:
            continue
        key = (customer_id, event.purpose, (event.channel or event.partner_id or "")[:128])
        row = consents.get(key)
        if row is not None and row["version"] >= event.version:
            continue  # a replay, or older than what is held
        row = consents[key] = {
            "customer_id": customer_id,
            "purpose": event.purpose,
            "scope": key[2],
            "channel": event.channel,
            "partner_id": clip(event.partner_id, 128),
            "slices": list(event.slices),
            "granted": isinstance(event, ConsentGranted),
            "version": event.version,
            "source": clip(event.source, 128),
            "changed_at": event.occurred_at,
        }
        changed[key] = row
    await store.upsert(
        session,
        SupportConsent,
        list(changed.values()),
        ("customer_id", "purpose", "scope"),
        update=CONSENT_COLUMNS,
    )
    after_bulk_writes(session)


# --- one event at a time: the same rules for a run of one ----------------------------------------


async def apply_registration(
    session: AsyncSession, settings: Settings, event: CustomerRegistered
) -> None:
    """Remember a newly registered customer for support; a replay changes nothing."""
    await apply_registrations(session, settings, [event])


async def apply_customer_update(
    session: AsyncSession, settings: Settings, event: CustomerUpdated
) -> None:
    """Copy the changed profile attributes (and handles) onto the projection."""
    await apply_customer_updates(session, settings, [event])


async def apply_consent(session: AsyncSession, event: ConsentGranted | ConsentRevoked) -> None:
    """Keep the newest consent state per purpose and channel or partner."""
    await apply_consents(session, [event])
