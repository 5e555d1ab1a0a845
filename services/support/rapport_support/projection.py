"""What support learns from the log: who customers are, what they agreed to, what they own.

The hot types arrive in runs (`@batch` handlers in `handlers`). A run reads the state it
needs with one `IN` query per table, applies its events in log order to that state in
memory, and writes each table with multi-row statements, so its cost does not grow by a
statement per event. Merges and erasures are rare and move many tables: they stay one
event at a time, on the ORM.
"""

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import Event
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
    OrderCompleted,
    TicketUpdated,
)
from rapport_support import store
from rapport_support.models import (
    SupportConsent,
    SupportCustomer,
    SupportErasedCustomer,
    SupportHandle,
    SupportMention,
    SupportMergedCustomer,
    SupportProduct,
    SupportTicket,
    aware,
    handle_key,
    model_key,
)
from rapport_support.settings import Settings

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
HandleKey = tuple[str, str]
Row = dict[str, Any]


def _clip(value: str | None, length: int) -> str | None:
    # Any producer may write to the log; an over-long value must not dead-letter the event.
    return value[:length] if value is not None else None


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it has no such day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _publish(session: AsyncSession, settings: Settings, event: Event) -> None:
    source = f"/services/{settings.service_name}"
    outbox.add(session, event, source=source, topic=settings.kafka.topic)


# --- what a run needs to know ----------------------------------------------------------------


@dataclass
class Identities:
    """Where the customer ids of a run live now (merges) and which of them are erased."""

    survivors: dict[str, str]
    erased: set[str]

    def current(self, customer_id: str) -> str:
        """The id the customer's data lives under: the survivor's when it was merged away."""
        for _ in range(store.MERGE_CHAIN_LIMIT):
            survivor = self.survivors.get(customer_id)
            if survivor is None or survivor == customer_id:
                return customer_id
            customer_id = survivor
        return customer_id


async def identities(session: AsyncSession, customer_ids: Iterable[str]) -> Identities:
    """Merges and erasures of these ids: one query per link of a merge chain, one for erasures."""
    survivors: dict[str, str] = {}
    asked: set[str] = set()
    pending = set(customer_ids)
    for _ in range(store.MERGE_CHAIN_LIMIT):
        pending -= asked
        if not pending:
            break
        asked |= pending
        found = await store.survivors_of(session, pending)
        survivors.update(found)
        pending = set(found.values())
    known = Identities(survivors, set())
    everyone = asked | {known.current(customer_id) for customer_id in asked}
    known.erased = await store.erased_among(session, everyone)
    return known


async def _customers(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, Row]:
    rows = await store.rows_where_in(session, SupportCustomer, "customer_id", customer_ids)
    return {row["customer_id"]: row for row in rows}


def _done(session: AsyncSession) -> None:
    # Rows written with Core bypass the session: a merge later in this transaction must
    # not read an ORM copy loaded before them.
    session.expire_all()


# --- social handles ---------------------------------------------------------------------------


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
    await _link_mentions(session, settings, book.claims)


async def _link_mentions(
    session: AsyncSession, settings: Settings, claims: Mapping[HandleKey, str]
) -> None:
    """Mentions of a claimed handle join its first claimant, with the tickets they opened."""
    if not claims:
        return
    mentions = await store.unlinked_mentions(session, list(claims))
    if not mentions:
        return
    claimant = {m["id"]: claims[(m["platform"], m["handle_key"])] for m in mentions}
    owner_of_subject = {m["subject_id"]: claimant[m["id"]] for m in mentions}
    await store.relink(session, SupportMention, claimant, subject=True)
    tickets = await store.tickets_filed_under(session, owner_of_subject)
    await store.relink(
        session, SupportTicket, {t["id"]: owner_of_subject[t["customer_id"]] for t in tickets}
    )
    order = {key: position for position, key in enumerate(claims)}
    subject_key = {
        mention["subject_id"]: order[(mention["platform"], mention["handle_key"])]
        for mention in mentions
    }
    # In the order the handles were claimed, as one event at a time would have written them.
    for ticket in sorted(tickets, key=lambda t: subject_key[t["customer_id"]]):
        filed_under, owner = ticket["customer_id"], owner_of_subject[ticket["customer_id"]]
        # ticket.opened went out under the handle's social:* id; this puts the ticket on
        # the customer's own timeline.
        _publish(
            session,
            settings,
            TicketUpdated(
                customer_id=owner,
                ticket_id=ticket["id"],
                status=ticket["status"],
                changes={"customer_id": owner, "previous_customer_id": filed_under},
            ),
        )


# --- customers --------------------------------------------------------------------------------


def _registered_row(event: CustomerRegistered) -> dict[str, Any]:
    return {
        "customer_id": event.customer_id,
        "email": _clip(event.email, 320) or "",
        "phone": _clip(event.phone, 64),
        "first_name": _clip(event.first_name, 100) or "",
        "last_name": _clip(event.last_name, 100) or "",
        "country": _clip(event.country, 64),
        "city": _clip(event.city, 128),
        "tier": None,
        "registered_at": event.occurred_at,
        "updated_at": event.occurred_at,
    }


async def add_registered_customers(
    session: AsyncSession, settings: Settings, events: Sequence[CustomerRegistered]
) -> None:
    """Remember newly registered customers for support; a replay changes nothing."""
    ids = {event.customer_id for event in events}
    known = await identities(session, ids)
    existing = await _customers(session, ids)
    new: dict[str, dict[str, Any]] = {}
    handle_sets: list[tuple[str, Mapping[str, Any]]] = []
    for event in events:
        customer_id = event.customer_id
        if customer_id in known.erased or customer_id in known.survivors:
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
    _done(session)


def _apply_changes(customer: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for name, length in PROFILE_FIELDS.items():
        if name not in changes:
            continue
        value = changes[name]
        if value is None and name in REQUIRED_FIELDS:
            continue
        customer[name] = _clip(str(value), length) if value is not None else None


async def apply_customer_updates(
    session: AsyncSession, settings: Settings, events: Sequence[CustomerUpdated]
) -> None:
    """Copy the changed profile attributes (and handles) onto the projection."""
    known = await identities(session, {event.customer_id for event in events})
    customers = await _customers(session, {known.current(e.customer_id) for e in events})
    changed: set[str] = set()
    handle_sets: list[tuple[str, Mapping[str, Any]]] = []
    for event in events:
        customer_id = known.current(event.customer_id)
        customer = customers.get(customer_id)
        if customer_id in known.erased or customer is None:
            continue
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
    _done(session)


async def apply_values(session: AsyncSession, events: Sequence[CustomerValueChanged]) -> None:
    """Profile's customer value (tier, orders, revenue, lifetime value) onto the projection.

    Each event carries the whole value, so the last of a customer in the run wins.
    """
    known = await identities(session, {event.customer_id for event in events})
    latest: dict[str, CustomerValueChanged] = {}
    for event in events:
        customer_id = known.current(event.customer_id)
        if customer_id not in known.erased:
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
    _done(session)


# --- consents and products -------------------------------------------------------------------


async def apply_consents(
    session: AsyncSession, events: Sequence[ConsentGranted | ConsentRevoked]
) -> None:
    """Keep the newest consent state per purpose and channel or partner."""
    known = await identities(session, {event.customer_id for event in events})
    ids = {known.current(event.customer_id) for event in events} - known.erased
    stored = await store.rows_where_in(session, SupportConsent, "customer_id", ids)
    consents = {(row["customer_id"], row["purpose"], row["scope"]): row for row in stored}
    changed: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in events:
        customer_id = known.current(event.customer_id)
        if customer_id in known.erased:
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
            "partner_id": _clip(event.partner_id, 128),
            "slices": list(event.slices),
            "granted": isinstance(event, ConsentGranted),
            "version": event.version,
            "source": _clip(event.source, 128),
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
    _done(session)


def _product_rows(
    settings: Settings, customer_id: str, event: OrderCompleted
) -> list[dict[str, Any]]:
    purchased_on = event.occurred_at.date()
    rows = []
    for line_no, item in enumerate(event.items):
        # Consumables (no model, no serial) are not something a customer calls support about.
        if not (item.product_model or item.serial_number):
            continue
        months = settings.warranty_months_for(item.product_model, item.category)
        rows.append(
            {
                "customer_id": customer_id,
                "order_id": event.order_id[:128],
                "line_no": line_no,
                "product_id": item.product_id,
                "product_model": item.product_model,
                "product_model_key": model_key(item.product_model),
                "name": item.name,
                "category": item.category,
                "serial_number": item.serial_number,
                "quantity": item.quantity,
                "purchased_at": event.occurred_at,
                "warranty_ends_on": add_months(purchased_on, months),
            }
        )
    return rows


async def record_orders(
    session: AsyncSession, settings: Settings, events: Sequence[OrderCompleted]
) -> None:
    """Remember the products of completed orders, with their warranty end."""
    known = await identities(session, {event.customer_id for event in events})
    owners = [(known.current(event.customer_id), event) for event in events]
    wanted = {(customer_id, event.order_id[:128]) for customer_id, event in owners}
    recorded = {
        (row["customer_id"], row["order_id"])
        for row in await store.recorded_orders(session, wanted)
    }
    rows: list[dict[str, Any]] = []
    for customer_id, event in owners:
        order = (customer_id, event.order_id[:128])
        if customer_id in known.erased or order in recorded:
            continue
        recorded.add(order)
        rows.extend(_product_rows(settings, customer_id, event))
    await store.upsert(session, SupportProduct, rows, ("customer_id", "order_id", "line_no"))
    _done(session)


# --- one event at a time: the same rules for a run of one --------------------------------------


async def add_registered_customer(
    session: AsyncSession, settings: Settings, event: CustomerRegistered
) -> None:
    """Remember a newly registered customer for support; a replay changes nothing."""
    await add_registered_customers(session, settings, [event])


async def apply_customer_update(
    session: AsyncSession, settings: Settings, event: CustomerUpdated
) -> None:
    """Copy the changed profile attributes (and handles) onto the projection."""
    await apply_customer_updates(session, settings, [event])


async def apply_consent(session: AsyncSession, event: ConsentGranted | ConsentRevoked) -> None:
    """Keep the newest consent state per purpose and channel or partner."""
    await apply_consents(session, [event])


async def record_order(session: AsyncSession, settings: Settings, event: OrderCompleted) -> None:
    """Remember the products of a completed order, with their warranty end."""
    await record_orders(session, settings, [event])


# --- merges and erasure (rare: one event at a time) ---------------------------------------------


async def apply_merge(session: AsyncSession, event: CustomerMerged) -> None:
    """Move the duplicate's rows to the surviving customer; later events for it follow."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await store.survivor_of(session, merged) == survivor:
        return
    if await store.is_erased(session, survivor):
        await erase_customer(session, merged, event.occurred_at)
        return
    merged_customer = await store.get_customer(session, merged)
    await store.move_customer_rows(session, merged, survivor)
    if merged_customer is not None:
        if await store.get_customer(session, survivor) is None:
            # The survivor's registration has not arrived; keep who the person is meanwhile.
            store.add_customer(
                session,
                SupportCustomer(
                    **merged_customer.model_dump(exclude={"customer_id"}), customer_id=survivor
                ),
            )
        await session.delete(merged_customer)
    store.add(
        session,
        SupportMergedCustomer(merged_id=merged, customer_id=survivor, merged_at=event.occurred_at),
    )
    await session.flush()


async def erase_customer(session: AsyncSession, customer_id: str, at: datetime) -> None:
    """Delete everything about the customer (and duplicates merged into them); keep tombstones."""
    erased = [customer_id] + [
        alias.merged_id for alias in await store.aliases_of(session, customer_id)
    ]
    await store.delete_customer_rows(session, customer_id)
    for erased_id in erased:
        if not await store.is_erased(session, erased_id):
            store.add(session, SupportErasedCustomer(customer_id=erased_id, erased_at=at))
    # Sent events about them (names, handles, free text) go now, not after the retention.
    await outbox.delete_sent(session, erased)
    checkpoint_after_commit(session)
    await session.flush()


async def apply_erasure(session: AsyncSession, event: CustomerErased) -> None:
    """GDPR erasure: nothing personal stays, only the id as a tombstone."""
    await erase_customer(session, event.customer_id, event.occurred_at)
