"""Profile's use cases: each writes its rows and its events in the caller's transaction."""

import hashlib
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import errors, outbox
from rapport_events import value as customer_value
from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    CustomerValueChanged,
)
from rapport_profile import analytics, consents, privacy_signals, store
from rapport_profile.consents import BLANKET_SHARING, PARTNER_SHARING, ConsentKey
from rapport_profile.models import (
    AccountPublic,
    Consent,
    ConsentChange,
    ConsentReceipt,
    ConsentUpdate,
    Customer,
    CustomerCreate,
    CustomerDetail,
    CustomerMetrics,
    CustomerPublic,
    IdempotentRequest,
    Identity,
    Merge,
    aware,
    event_fields,
)

SOURCE = "/services/profile"
ALIAS = "alias"
# What orders decide in a customer's metrics (the loyalty balance is the points' own).
ORDER_METRICS = (
    "orders",
    "revenue",
    "profit",
    "first_order_at",
    "last_order_at",
    "lifetime_value",
    "tier",
    "updated_at",
)


class CustomerNotFound(errors.NotFound):
    """No customer has that id."""

    def message(self) -> str:
        return f"no customer {self}"


class DuplicateEmail(errors.Conflict):
    """Another customer already has that e-mail address."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"a customer with this email already exists: {existing_id}")
        self.existing_id = existing_id

    def details(self) -> dict[str, Any]:
        return {"existing_id": self.existing_id}


class DuplicateExternalId(DuplicateEmail):
    """Another customer already has one of these external ids."""

    def __init__(self, existing_id: str) -> None:
        ValueError.__init__(self, f"a customer with this external id already exists: {existing_id}")
        self.existing_id = existing_id


class Conflict(errors.Conflict):
    """The request contradicts the state of the data (409)."""


class InvalidRequest(errors.InvalidRequest):
    """The request is well-formed but cannot be carried out (422)."""


class IdempotencyMismatch(errors.InvalidRequest):
    """An Idempotency-Key was reused for a different request."""

    code = "idempotency_key_reused"


def publish(session: AsyncSession, event: Event, topic: str) -> Envelope:
    # The configured log, not outbox.add's default: the relay sends to the row's topic.
    return outbox.add(session, event, source=SOURCE, topic=topic)


async def publish_all(session: AsyncSession, events: Sequence[Event], topic: str) -> None:
    """Publish `events` in order, written to the outbox together."""
    await outbox.add_all(session, events, source=SOURCE, topic=topic)


def new_message_id() -> str:
    return f"rapport-{uuid.uuid4()}"


# --- idempotency -------------------------------------------------------------------


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def replay(session: AsyncSession, key: str, fingerprint: str) -> IdempotentRequest | None:
    """The stored answer to an earlier request with this key, if there is one."""
    earlier = await store.get_idempotent(session, key)
    if earlier is None:
        return None
    if earlier.request_hash != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used for a different request")
    return earlier


def remember(
    session: AsyncSession,
    key: str,
    fingerprint: str,
    status_code: int,
    body: dict[str, Any],
    customer_id: str | None,
) -> None:
    """Keep the answer so a retry with the same key gets it again."""
    store.add(
        session,
        IdempotentRequest(
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            body=body,
            customer_id=customer_id,
        ),
    )


# --- customers -------------------------------------------------------------------


async def register_customer(session: AsyncSession, data: CustomerCreate, *, topic: str) -> Customer:
    """Create a customer and publish customer.registered on `topic`."""
    existing = await store.find_by_email(session, data.email)
    if existing is not None:
        raise DuplicateEmail(await resolve(session, existing.id))
    holders = await store.find_by_external_ids(session, data.external_ids)
    if holders:
        raise DuplicateExternalId(holders[0].id)
    customer = Customer.model_validate(data)
    store.add(session, customer)
    await session.flush()
    publish(session, CustomerRegistered(customer_id=customer.id, **event_fields(customer)), topic)
    return customer


async def get_customer(session: AsyncSession, customer_id: str) -> Customer:
    """One customer, or CustomerNotFound."""
    customer = await store.get_customer(session, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


async def customer_detail(session: AsyncSession, customer_id: str) -> CustomerDetail:
    """One customer as the API shows it, with the accounts they belong to, or
    CustomerNotFound (read as plain rows: a read builds no ORM object)."""
    row = await store.customer_row(session, customer_id)
    if row is None:
        raise CustomerNotFound(customer_id)
    detail = CustomerDetail.model_validate(row)
    detail.accounts = [
        AccountPublic.model_validate(a) for a in await store.accounts_of(session, row.id)
    ]
    return detail


async def active_customer(session: AsyncSession, customer_id: str) -> Customer:
    """A customer that can be changed: not merged away (Conflict) and not erased."""
    customer = await store.lock_customer(session, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    if customer.status != "active":
        raise Conflict(f"customer {customer_id} was merged into {customer.merged_into}")
    return customer


async def update_customer(
    session: AsyncSession, customer_id: str, changes: dict[str, Any], *, topic: str
) -> Customer:
    """Apply a partial change and publish customer.updated with what really changed."""
    customer = await active_customer(session, customer_id)
    email = changes.get("email")
    if email and email != customer.email:
        holder = await store.find_by_email(session, email)
        if holder is not None and holder.id != customer.id:
            raise DuplicateEmail(await resolve(session, holder.id))
    external_ids = changes.get("external_ids")
    if external_ids:
        holders = await store.find_by_external_ids(session, external_ids)
        holders = [c for c in holders if c.id != customer.id]
        if holders:
            raise DuplicateExternalId(holders[0].id)
    apply_changes(session, customer, changes, topic)
    return customer


def apply_changes(
    session: AsyncSession, customer: Customer, changes: dict[str, Any], topic: str
) -> dict[str, Any]:
    """Set the fields that differ and publish them; returns what changed."""
    changed = {name: value for name, value in changes.items() if getattr(customer, name) != value}
    if not changed:
        return {}
    for name, value in changed.items():
        setattr(customer, name, value)
    customer.updated_at = utcnow()
    session.add(customer)
    published = CustomerPublic.model_validate(customer).model_dump(mode="json")
    publish(
        session,
        CustomerUpdated(customer_id=customer.id, changes={n: published[n] for n in changed}),
        topic,
    )
    return changed


async def search_customers(
    session: AsyncSession,
    *,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    text: str | None = None,
    country: str | None = None,
    segment: str | None = None,
    tier: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Customer], str | None]:
    """Active customers by exact e-mail, phone, `system:id`, words of the name and filters,
    in pages."""
    after = decode_cursor(cursor, str)[0] if cursor else None
    if tier is not None:
        analytics.check_tier(tier)
    found = await store.search_customers(
        session,
        email=email,
        phone=phone,
        external_id=tuple(external_id.split(":", 1)) if external_id else None,  # type: ignore[arg-type]
        text=text,
        country=country,
        segment=segment,
        tier=tier,
        after=after,
        limit=limit + 1,
    )
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(found) > limit else None
    return page, next_cursor


# --- identities ----------------------------------------------------------------------


async def resolve(session: AsyncSession, customer_id: str) -> str:
    """The id that owns `customer_id` now: itself, or the customer it was merged into."""
    alias = await store.get_identity(session, ALIAS, customer_id)
    return alias.customer_id if alias is not None else customer_id


async def is_erased(session: AsyncSession, customer_id: str) -> bool:
    return await store.get_erasure(session, customer_id) is not None


# --- consents ------------------------------------------------------------------------


def _consent_event(change: ConsentChange) -> ConsentGranted | ConsentRevoked:
    model = ConsentGranted if change.granted else ConsentRevoked
    return model(
        customer_id=change.customer_id,
        occurred_at=change.changed_at,
        purpose=change.purpose,  # type: ignore[arg-type]
        channel=change.channel or None,  # type: ignore[arg-type]
        partner_id=change.partner_id or None,
        slices=tuple(change.slices),  # type: ignore[arg-type]
        source=change.source,
        text_version=change.text_version,
        actor=change.actor,
        version=change.version,
    )


def _record_consent(
    session: AsyncSession,
    customer: Customer,
    *,
    purpose: str,
    channel: str,
    partner_id: str,
    slices: Sequence[str],
    granted: bool,
    source: str,
    text_version: str | None,
    actor: str | None,
    current: Consent | None,
    topic: str,
) -> Consent:
    """Set one consent, append it to the history and publish it, under a new version."""
    customer.consent_version += 1
    session.add(customer)
    now = utcnow()
    consent = current or Consent(
        customer_id=customer.id,
        purpose=purpose,
        channel=channel,
        partner_id=partner_id,
        granted=granted,
        version=0,
    )
    consent.slices = list(slices)
    consent.granted = granted
    consent.version = customer.consent_version
    consent.updated_at = now
    session.add(consent)
    change = ConsentChange(
        customer_id=customer.id,
        version=customer.consent_version,
        purpose=purpose,
        channel=channel,
        partner_id=partner_id,
        slices=list(slices),
        granted=granted,
        source=source,
        text_version=text_version,
        actor=actor,
        changed_at=now,
    )
    session.add(change)
    publish(session, _consent_event(change), topic)
    return consent


async def set_consent(
    session: AsyncSession, customer_id: str, data: ConsentUpdate, *, topic: str
) -> Consent:
    """Grant or revoke one consent; an unchanged state records nothing new."""
    customer = await active_customer(session, customer_id)
    channel, partner_id = data.channel or "", data.partner_id or ""
    current = await store.get_consent(session, customer.id, data.purpose, channel, partner_id)
    slices = list(data.slices) if data.granted else []
    if current is not None and current.granted == data.granted and current.slices == slices:
        return current
    return _record_consent(
        session,
        customer,
        purpose=data.purpose,
        channel=channel,
        partner_id=partner_id,
        slices=slices,
        granted=data.granted,
        source=data.source,
        text_version=data.text_version,
        actor=data.actor,
        current=current,
        topic=topic,
    )


async def refuse_sharing(
    session: AsyncSession, refusals: Mapping[str, str], *, topic: str
) -> set[str]:
    """Record the sale-and-sharing refusals tracking calls carried (id -> source) as the
    person's choice; a record that refuses every sharing already changes nothing. Returns
    the ids whose consents changed.

    A few queries for the whole batch whatever its size; rows are written only for a
    record whose choice changes, which is once per person, not once per call.
    """
    if not refusals:
        return set()
    aliases = await store.identities_among(session, ALIAS, refusals)
    owner = {identity.value: identity.customer_id for identity in aliases}
    sources = {owner.get(tracked, tracked): source for tracked, source in refusals.items()}
    ids = set(sources) - await store.erased_among(session, sources)
    held: dict[str, dict[ConsentKey, Consent]] = {customer_id: {} for customer_id in ids}
    for row in await store.consents_among(session, ids, PARTNER_SHARING):
        held[row.customer_id][_key(row)] = row
    pending = {
        customer_id: keys
        for customer_id in sorted(ids)
        if (keys := privacy_signals.refusal_changes(_choices(list(held[customer_id].values()))))
    }
    if not pending:
        return set()
    customers = {c.id: c for c in await store.customers_among(session, pending)}
    for customer_id, keys in pending.items():
        customer = customers.get(customer_id)
        if customer is None:
            _keep_visitor_refusal(session, customer_id, sources[customer_id])
            continue
        if customer.status != "active":
            continue
        for purpose, channel, partner_id in keys:
            _record_consent(
                session,
                customer,
                purpose=purpose,
                channel=channel,
                partner_id=partner_id,
                slices=[],
                granted=False,
                source=sources[customer_id],
                text_version=None,
                actor="tracking",
                current=held[customer_id].get((purpose, channel, partner_id)),
                topic=topic,
            )
    return set(pending)


def _keep_visitor_refusal(session: AsyncSession, visitor_id: str, source: str) -> None:
    """A visitor not identified yet refuses sharing: keep it on their id (with its receipt
    entry), so the merge that identifies them carries it to the customer. Nothing is
    published: no service knows a visitor's consents, and no partner has their data."""
    purpose, channel, partner_id = BLANKET_SHARING
    now = utcnow()
    session.add(
        Consent(
            customer_id=visitor_id,
            purpose=purpose,
            channel=channel,
            partner_id=partner_id,
            granted=False,
            version=1,
            updated_at=now,
        )
    )
    session.add(
        ConsentChange(
            customer_id=visitor_id,
            version=1,
            purpose=purpose,
            channel=channel,
            partner_id=partner_id,
            granted=False,
            source=source,
            actor="tracking",
            changed_at=now,
        )
    )


async def fold_visitor_consents(session: AsyncSession, survivor_id: str, merged_id: str) -> None:
    """Two ids of one visitor not identified yet: the survivor keeps a refusal the other
    made (with its receipt entry), so it holds when the visitor identifies."""
    mine = {_key(c) for c in await store.consents_of(session, survivor_id)}
    for row in await store.consents_of(session, merged_id):
        if _key(row) in mine:
            await session.delete(row)
            continue
        row.customer_id = survivor_id
        session.add(row)
    for entry in await store.consent_history(session, merged_id):
        if _key(entry) not in mine:
            entry.customer_id = survivor_id
            session.add(entry)


async def consent_receipt(session: AsyncSession, customer_id: str) -> ConsentReceipt:
    """Every consent of the customer as it stands, and the history behind it."""
    customer = await get_customer(session, customer_id)
    consents = await store.consents_of(session, customer.id)
    history = await store.consent_history(session, customer.id)
    return ConsentReceipt.model_validate(
        {
            "customer_id": customer.id,
            "version": customer.consent_version,
            "consents": [_consent_public(c) for c in consents],
            "history": [
                {
                    **_consent_public(h),
                    "source": h.source,
                    "text_version": h.text_version,
                    "actor": h.actor,
                    "changed_at": h.changed_at,
                }
                for h in history
            ],
        }
    )


def _consent_public(row: Consent | ConsentChange) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "channel": row.channel or None,
        "partner_id": row.partner_id or None,
        "slices": row.slices,
        "granted": row.granted,
        "version": row.version,
        "updated_at": getattr(row, "updated_at", None) or getattr(row, "changed_at", None),
    }


def _consent_state(row: Consent) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "channel": row.channel,
        "partner_id": row.partner_id,
        "slices": list(row.slices),
        "granted": row.granted,
    }


def _choices(rows: Sequence[Consent]) -> dict[ConsentKey, consents.Choice]:
    return {_key(c): consents.Choice(c.granted, tuple(c.slices)) for c in rows}


async def _restrict_consents(
    session: AsyncSession, survivor: Customer, merged_id: str, actor: str | None, topic: str
) -> None:
    """The survivor ends with the most restrictive explicit choice of the two records; a
    record without a choice overrides nothing (`consents`)."""
    current = {_key(c): c for c in await store.consents_of(session, survivor.id)}
    theirs = _choices(await store.consents_of(session, merged_id))
    changes = consents.merge_changes(_choices(list(current.values())), theirs)
    carried = await _blanket_source(session, merged_id, theirs, changes)
    for (purpose, channel, partner_id), choice in changes.items():
        blanket = (purpose, channel, partner_id) == BLANKET_SHARING
        _record_consent(
            session,
            survivor,
            purpose=purpose,
            channel=channel,
            partner_id=partner_id,
            slices=list(choice.slices),
            granted=choice.granted,
            source=carried if blanket and carried else "merge",
            text_version=None,
            actor=actor,
            current=current.get((purpose, channel, partner_id)),
            topic=topic,
        )
    await store.delete_consents(session, merged_id)


async def _blanket_source(
    session: AsyncSession,
    merged_id: str,
    theirs: Mapping[ConsentKey, consents.Choice],
    changes: Mapping[ConsentKey, consents.Choice],
) -> str | None:
    """Where the merged record's blanket sharing choice came from (Global Privacy Control,
    say) when the survivor takes it over, so the survivor's receipt keeps the source."""
    if BLANKET_SHARING not in changes or changes[BLANKET_SHARING] != theirs.get(BLANKET_SHARING):
        return None
    entries = [
        h for h in await store.consent_history(session, merged_id) if _key(h) == BLANKET_SHARING
    ]
    return entries[-1].source if entries else None


def _key(row: Consent | ConsentChange | dict[str, Any]) -> ConsentKey:
    if isinstance(row, dict):
        return (row["purpose"], row["channel"], row["partner_id"])
    return (row.purpose, row.channel, row.partner_id)


class _MergeChanges:
    """Which of the survivor's consent changes a merge made, and which came after it."""

    def __init__(self, merge: Merge, latest: dict[ConsentKey, ConsentChange]) -> None:
        versions = merge.snapshot.get("survivor_consent_versions") or [None, None]
        self._low: int | None = versions[0]
        self._high: int | None = versions[1]
        self._merged_at = aware(merge.merged_at)
        self.latest = latest

    def made_by_merge(self, change: ConsentChange) -> bool:
        if self._low is not None and self._high is not None:
            return self._low < change.version <= self._high
        return change.source == "merge"  # merges recorded before their versions were kept

    def after_merge(self, change: ConsentChange) -> bool:
        if self._high is not None:
            return change.version > self._high
        return change.source != "merge" and aware(change.changed_at) > self._merged_at

    def revoked_since(self) -> set[ConsentKey]:
        """Consents the survivor withdrew after the merge and has not granted again."""
        return {
            key
            for key, change in self.latest.items()
            if not change.granted and self.after_merge(change)
        }


async def _merge_changes(session: AsyncSession, survivor_id: str, merge: Merge) -> _MergeChanges:
    latest: dict[ConsentKey, ConsentChange] = {}
    for change in await store.consent_history(session, survivor_id):
        latest[_key(change)] = change  # the history comes in version order
    return _MergeChanges(merge, latest)


async def _restore_consents(
    session: AsyncSession,
    customer: Customer,
    states: list[dict[str, Any]],
    actor: str | None,
    topic: str,
) -> None:
    """Bring the customer's consents back to `states`, recording only real changes; a state
    marked `absent` is a choice the record did not have, so its row goes."""
    current = {_key(c): c for c in await store.consents_of(session, customer.id)}
    for state in states:
        own = current.get(_key(state))
        if state.get("absent") and own is not None:
            if own.granted:  # services sharing under the carried-over grant must stop
                own = _record_consent(
                    session,
                    customer,
                    purpose=own.purpose,
                    channel=own.channel,
                    partner_id=own.partner_id,
                    slices=[],
                    granted=False,
                    source="unmerge",
                    text_version=None,
                    actor=actor,
                    current=own,
                    topic=topic,
                )
                await session.flush()
            await session.delete(own)
            continue
        if state.get("absent") or (
            own is not None and own.granted == state["granted"] and own.slices == state["slices"]
        ):
            continue
        _record_consent(
            session,
            customer,
            purpose=state["purpose"],
            channel=state["channel"],
            partner_id=state["partner_id"],
            slices=state["slices"],
            granted=state["granted"],
            source="unmerge",
            text_version=None,
            actor=actor,
            current=own,
            topic=topic,
        )


def _survivor_states(snapshot: dict[str, Any], changes: _MergeChanges) -> list[dict[str, Any]]:
    """The survivor's pre-merge states, only where its latest change is the merge's own; a
    choice the merge carried over from the duplicate comes back as `absent`."""
    before = {_key(state): state for state in snapshot["survivor_consents"]}
    states = []
    for key, change in changes.latest.items():
        if not changes.made_by_merge(change):
            continue
        purpose, channel, partner_id = key
        states.append(
            before.get(key)
            or {
                "purpose": purpose,
                "channel": channel,
                "partner_id": partner_id,
                "slices": [],
                "granted": False,
                "absent": True,
            }
        )
    return states


def _merged_states(snapshot: dict[str, Any], changes: _MergeChanges) -> list[dict[str, Any]]:
    """The duplicate's pre-merge states; a withdrawal made since the merge is kept."""
    revoked = changes.revoked_since()
    return [
        {**state, "granted": False, "slices": []} if _key(state) in revoked else state
        for state in snapshot["merged_consents"]
    ]


# --- merges --------------------------------------------------------------------------


async def merge_customers(
    session: AsyncSession,
    survivor_id: str,
    merged_id: str,
    *,
    reason: str,
    actor: str | None,
    topic: str,
) -> Merge:
    """Fold `merged_id` into `survivor_id`: rows, identities and metrics move; consents
    resolve to the most restrictive; customer.merged is published."""
    if survivor_id == merged_id:
        raise InvalidRequest("a customer cannot be merged into itself")
    survivor = await active_customer(session, survivor_id)
    merged = await store.lock_customer(session, merged_id)
    if merged is None:
        if await resolve(session, merged_id) != merged_id or not await _known_id(
            session, merged_id
        ):
            raise CustomerNotFound(merged_id)
    elif merged.status != "active":
        raise Conflict(f"customer {merged_id} was already merged into {merged.merged_into}")
    subjects = [merged_id] + [
        i.value for i in await store.identities_of(session, merged_id) if i.kind == ALIAS
    ]
    snapshot = {
        "subjects": subjects,
        "identities": [[i.kind, i.value] for i in await store.identities_of(session, merged_id)],
        "survivor_consents": [
            _consent_state(c) for c in await store.consents_of(session, survivor.id)
        ],
        "merged_consents": [_consent_state(c) for c in await store.consents_of(session, merged_id)],
    }
    await store.repoint_identities(session, merged_id, survivor.id)
    store.add(session, Identity(kind=ALIAS, value=merged_id, customer_id=survivor.id))
    await store.move_rows(session, merged_id, survivor.id)
    before = survivor.consent_version
    await _restrict_consents(session, survivor, merged_id, actor, topic)
    # The versions the merge gave its consent changes, so an unmerge undoes only those.
    snapshot["survivor_consent_versions"] = [before, survivor.consent_version]
    if merged is not None:
        merged.status = "merged"
        merged.merged_into = survivor.id
        merged.updated_at = utcnow()
        session.add(merged)
        for earlier in await store.customers_merged_into(session, merged_id):
            earlier.merged_into = survivor.id
            session.add(earlier)
        if survivor.acquisition_channel is None and merged.acquisition_channel:
            apply_changes(
                session, survivor, {"acquisition_channel": merged.acquisition_channel}, topic
            )
    await session.flush()
    await refresh_metrics(session, survivor.id, topic)
    await store.delete_rows(session, CustomerMetrics, "customer_id", merged_id)
    merge = Merge(
        customer_id=survivor.id,
        merged_customer_id=merged_id,
        reason=reason,
        actor=actor,
        snapshot=snapshot,
    )
    store.add(session, merge)
    publish(
        session,
        CustomerMerged(
            customer_id=survivor.id,
            merged_customer_id=merged_id,
            reason=reason,  # type: ignore[arg-type]
            actor=actor,
        ),
        topic,
    )
    return merge


async def _known_id(session: AsyncSession, customer_id: str) -> bool:
    """An id without a customer row that tracking calls have used (a pre-identification id)."""
    if await store.identities_of(session, customer_id):
        return True
    return await store.has_timeline(session, customer_id)


async def unmerge_customers(
    session: AsyncSession, survivor_id: str, merged_id: str, *, actor: str | None, topic: str
) -> Merge:
    """Undo a merge: the merged customer's own rows, identities and consents come back."""
    merge = await store.open_merge(session, survivor_id, merged_id)
    if merge is None:
        raise CustomerNotFound(f"{merged_id} (no merge into {survivor_id} to undo)")
    survivor = await active_customer(session, survivor_id)
    snapshot = merge.snapshot
    changes = await _merge_changes(session, survivor.id, merge)
    await store.move_rows_back(session, survivor.id, snapshot["subjects"], merged_id)
    await store.move_identities(session, snapshot["identities"], merged_id)
    await store.delete_identity(session, ALIAS, merged_id)
    merged = await store.lock_customer(session, merged_id)
    if merged is not None:
        merged.status = "active"
        merged.merged_into = None
        merged.updated_at = utcnow()
        session.add(merged)
        await session.flush()
        # Other services dropped or moved this customer at the merge: announce it again.
        publish(session, CustomerRegistered(customer_id=merged.id, **event_fields(merged)), topic)
        publish(
            session,
            CustomerUpdated(
                customer_id=merged.id, changes={"status": "active", "unmerged_from": survivor.id}
            ),
            topic,
        )
        await _restore_consents(session, merged, _merged_states(snapshot, changes), actor, topic)
    await _restore_consents(session, survivor, _survivor_states(snapshot, changes), actor, topic)
    merge.undone_at = utcnow()
    session.add(merge)
    await session.flush()
    await refresh_metrics_of(session, [survivor.id, merged_id], topic)
    return merge


# --- metrics -------------------------------------------------------------------------


async def refresh_metrics(session: AsyncSession, customer_id: str, topic: str) -> None:
    """Recompute a customer's order aggregates and value, and publish the value."""
    await refresh_metrics_of(session, [customer_id], topic)


async def refresh_metrics_of(
    session: AsyncSession, customer_ids: Collection[str], topic: str
) -> None:
    """Recompute these customers' order aggregates and value (one grouped query, one
    multi-row upsert) and publish one customer.value.changed each (safe to repeat)."""
    totals = await store.order_totals_of(session, customer_ids)
    now = utcnow()
    rows = []
    for customer_id in sorted(customer_ids):
        count, revenue, profit, first, last = totals.get(customer_id, (0, 0, 0, None, None))
        first_at, last_at = _parse_time(first), _parse_time(last)
        lifetime = customer_value.lifetime_value(Decimal(str(profit)), first_at, last_at)
        rows.append(
            {
                "customer_id": customer_id,
                "orders": int(count),
                "revenue": Decimal(str(revenue)).quantize(customer_value.CENT),
                "profit": Decimal(str(profit)).quantize(customer_value.CENT),
                "first_order_at": first_at,
                "last_order_at": last_at,
                "lifetime_value": lifetime,
                "tier": customer_value.tier(int(count), lifetime),
                "loyalty_points": 0,
                "updated_at": now,
            }
        )
    await store.upsert_metrics(session, rows, columns=ORDER_METRICS)
    await publish_all(session, [value_changed(row) for row in rows], topic)


def value_changed(row: Mapping[str, Any]) -> CustomerValueChanged:
    """The customer.value.changed event of one metrics row."""
    orders, revenue = row["orders"], row["revenue"]
    return CustomerValueChanged(
        customer_id=row["customer_id"],
        orders=orders,
        revenue=revenue,
        average_order_value=customer_value.average_order_value(orders, revenue),
        profit=row["profit"],
        lifetime_value=row["lifetime_value"],
        tier=row["tier"],
        first_order_at=row["first_order_at"],
        last_order_at=row["last_order_at"],
        frequency_score=customer_value.frequency_score(orders),
        monetary_score=customer_value.monetary_score(orders, revenue),
    )


def _parse_time(value: Any) -> datetime | None:
    # Aggregates over SQLite come back as text.
    if value is None:
        return None
    if isinstance(value, str):
        return aware(datetime.fromisoformat(value))
    return aware(value)
