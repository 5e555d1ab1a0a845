"""Consent use cases: set, refuse sharing, the receipt, and consents through merges.

They take a `ProfileUnitOfWork` (the merge, unmerge, tracking and the overview pass
theirs)."""

from collections.abc import Mapping, Sequence
from typing import Any

from rapport_events.base import utcnow
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
)
from rapport_profile.consents import privacy_signals, rules
from rapport_profile.consents.models import Consent, ConsentChange, ConsentReceipt, ConsentUpdate
from rapport_profile.consents.rules import Choice, ConsentKey
from rapport_profile.customers import service as customer_service
from rapport_profile.customers.models import Customer
from rapport_profile.identity import service as identity_service
from rapport_profile.identity.models import Merge
from rapport_profile.shared import aware
from rapport_profile.unit_of_work import ProfileUnitOfWork


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


async def _record_consent(
    uow: ProfileUnitOfWork,
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
) -> Consent:
    """Set one consent, append it to the history and publish it, under a new version."""
    customer.consent_version += 1
    uow.customers.add(customer)
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
    uow.consents.add(consent)
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
    uow.consents.add(change)
    await uow.outbox.publish([_consent_event(change)])
    return consent


async def set_consent(uow: ProfileUnitOfWork, customer_id: str, data: ConsentUpdate) -> Consent:
    """Grant or revoke one consent; an unchanged state records nothing new."""
    customer = customer_service.changeable(
        await uow.customers.lock_customer(customer_id), customer_id
    )
    channel, partner_id = data.channel or "", data.partner_id or ""
    current = await uow.consents.get_consent(customer.id, data.purpose, channel, partner_id)
    slices = list(data.slices) if data.granted else []
    if current is not None and current.granted == data.granted and current.slices == slices:
        return current
    return await _record_consent(
        uow,
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
    )


async def refuse_sharing(uow: ProfileUnitOfWork, refusals: Mapping[str, str]) -> set[str]:
    """Record the sale-and-sharing refusals tracking calls carried (id -> source) as the
    person's choice (`record_refusals`), each on the id that owns it now; an erased one is
    left alone. Returns the ids whose consents changed."""
    if not refusals:
        return set()
    aliases = await uow.identity.identities_among(identity_service.ALIAS, refusals)
    owner = {identity.value: identity.customer_id for identity in aliases}
    sources = {owner.get(tracked, tracked): source for tracked, source in refusals.items()}
    erased = await uow.gdpr.erased_among(sources)
    kept = {
        customer_id: source for customer_id, source in sources.items() if customer_id not in erased
    }
    return await record_refusals(uow, kept)


async def record_refusals(uow: ProfileUnitOfWork, sources: Mapping[str, str]) -> set[str]:
    """Record sharing refusals (owner id -> source) as the person's choice; a record that
    refuses every sharing already changes nothing, and one merged away is left alone. A
    visitor not identified yet keeps it on their id. Returns the ids whose choice changed.

    A few queries for the whole batch whatever its size; rows are written only for a
    record whose choice changes, which is once per person, not once per call.
    """
    held: dict[str, dict[ConsentKey, Consent]] = {customer_id: {} for customer_id in sources}
    for row in await uow.consents.consents_among(set(sources), rules.PARTNER_SHARING):
        held[row.customer_id][_key(row)] = row
    pending = {
        customer_id: keys
        for customer_id in sorted(sources)
        if (keys := privacy_signals.refusal_changes(_choices(list(held[customer_id].values()))))
    }
    if not pending:
        return set()
    customers = {c.id: c for c in await uow.customers.customers_among(set(pending))}
    for customer_id, keys in pending.items():
        customer = customers.get(customer_id)
        if customer is None:
            _keep_visitor_refusal(uow, customer_id, sources[customer_id])
            continue
        if customer.status != "active":
            continue
        for purpose, channel, partner_id in keys:
            await _record_consent(
                uow,
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
            )
    return set(pending)


def _keep_visitor_refusal(uow: ProfileUnitOfWork, visitor_id: str, source: str) -> None:
    """A visitor not identified yet refuses sharing: keep it on their id (with its receipt
    entry), so the merge that identifies them carries it to the customer. Nothing is
    published: no service knows a visitor's consents, and no partner has their data."""
    purpose, channel, partner_id = rules.BLANKET_SHARING
    now = utcnow()
    uow.consents.add(
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
    uow.consents.add(
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


async def fold_consents(uow: ProfileUnitOfWork, survivor_id: str, merged_id: str) -> None:
    """Two ids of one visitor not identified yet: move the merged one's consents and their
    history to the survivor, where it has no choice of its own for that consent (a refusal
    then holds when the visitor identifies)."""
    mine = {_key(c) for c in await uow.consents.consents_of(survivor_id)}
    for row in await uow.consents.consents_of(merged_id):
        if _key(row) in mine:
            await uow.consents.delete(row)
            continue
        row.customer_id = survivor_id
        uow.consents.add(row)
    for entry in await uow.consents.consent_history(merged_id):
        if _key(entry) not in mine:
            entry.customer_id = survivor_id
            uow.consents.add(entry)


async def receipt(uow: ProfileUnitOfWork, customer_id: str) -> ConsentReceipt:
    """Every consent of the customer as it stands, and the history behind it."""
    customer = customer_service.known(await uow.customers.get_customer(customer_id), customer_id)
    return await receipt_of(uow, customer.id, customer.consent_version)


async def receipt_of(uow: ProfileUnitOfWork, customer_id: str, version: int) -> ConsentReceipt:
    """`receipt` of a customer already read, at their consent `version`."""
    consents = await uow.consents.consents_of(customer_id)
    history = await uow.consents.consent_history(customer_id)
    return ConsentReceipt.model_validate(
        {
            "customer_id": customer_id,
            "version": version,
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


def _choices(rows: Sequence[Consent]) -> dict[ConsentKey, Choice]:
    return {_key(c): Choice(c.granted, tuple(c.slices)) for c in rows}


async def restrict_consents(
    uow: ProfileUnitOfWork, survivor: Customer, merged_id: str, actor: str | None
) -> None:
    """The survivor ends with the most restrictive explicit choice of the two records; a
    record without a choice overrides nothing (`consents`)."""
    current = {_key(c): c for c in await uow.consents.consents_of(survivor.id)}
    theirs = _choices(await uow.consents.consents_of(merged_id))
    changes = rules.merge_changes(_choices(list(current.values())), theirs)
    carried = await _blanket_source(uow, merged_id, theirs, changes)
    for (purpose, channel, partner_id), choice in changes.items():
        blanket = (purpose, channel, partner_id) == rules.BLANKET_SHARING
        await _record_consent(
            uow,
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
        )
    await uow.consents.delete_consents(merged_id)


async def _blanket_source(
    uow: ProfileUnitOfWork,
    merged_id: str,
    theirs: Mapping[ConsentKey, Choice],
    changes: Mapping[ConsentKey, Choice],
) -> str | None:
    """Where the merged record's blanket sharing choice came from (Global Privacy Control,
    say) when the survivor takes it over, so the survivor's receipt keeps the source."""
    if rules.BLANKET_SHARING not in changes or changes[rules.BLANKET_SHARING] != theirs.get(
        rules.BLANKET_SHARING
    ):
        return None
    entries = [
        h for h in await uow.consents.consent_history(merged_id) if _key(h) == rules.BLANKET_SHARING
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


async def _merge_changes(uow: ProfileUnitOfWork, survivor_id: str, merge: Merge) -> _MergeChanges:
    latest: dict[ConsentKey, ConsentChange] = {}
    for change in await uow.consents.consent_history(survivor_id):
        latest[_key(change)] = change  # the history comes in version order
    return _MergeChanges(merge, latest)


async def restore_consents(
    uow: ProfileUnitOfWork, customer: Customer, states: list[dict[str, Any]], actor: str | None
) -> None:
    """Bring the customer's consents back to `states`, recording only real changes; a state
    marked `absent` is a choice the record did not have, so its row goes."""
    current = {_key(c): c for c in await uow.consents.consents_of(customer.id)}
    for state in states:
        own = current.get(_key(state))
        if state.get("absent") and own is not None:
            if own.granted:  # services sharing under the carried-over grant must stop
                own = await _record_consent(
                    uow,
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
                )
                await uow.flush()
            await uow.consents.delete(own)
            continue
        if state.get("absent") or (
            own is not None and own.granted == state["granted"] and own.slices == state["slices"]
        ):
            continue
        await _record_consent(
            uow,
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
