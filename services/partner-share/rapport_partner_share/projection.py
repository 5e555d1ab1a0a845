"""The consented projection: what each partner may see of each customer, kept current.

Consent events start, narrow and stop the sharing; customer, order, segment and
loyalty events keep the shared slices current while the consent stands; merges
and erasures move or delete them. Revocation and erasure delete the slices in the
transaction that applies the event, so the partner's next request already misses
them; the partner is then told through a signed notice (`notices`).

The frequent types arrive in runs (`@batch` handlers): a run reads what it needs with one
`IN` query per table (`runs.load_run`), applies its events in log order in memory
(`runs.Run`), and writes each table back with multi-row statements. A single event is a
run of one. Merges and erasures are rare and stay on the ORM, one at a time; profile fills
are in `fills`.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import Event, utcnow
from rapport_events.codec import Envelope
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import (
    ConsentGranted,
    ConsentRevoked,
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    LoyaltyPointsEarned,
    OrderCompleted,
    SegmentEntered,
    SegmentExited,
)
from rapport_partner_share import fills, notices, security, slices, store
from rapport_partner_share.models import (
    ErasedCustomer,
    KnownCustomer,
    Partner,
    PartnerConsent,
)
from rapport_partner_share.runs import Run, load_run
from rapport_partner_share.slices import as_utc

PARTNER_SHARING = "partner_sharing"
MERGE = "merge"  # the source profile gives the consent changes a merge makes


async def _is_erased(session: AsyncSession, customer_id: str) -> bool:
    return await store.get_tombstone(session, customer_id) is not None


def _new_consent(partner: Partner, customer_id: str, now: datetime) -> PartnerConsent:
    return PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=security.pseudonym(partner.ref_key, customer_id),
        granted=False,
        slices=[],
        version=0,
        changed_at=now,
    )


# --- customers ----------------------------------------------------------------------


async def note_registered_customers(
    session: AsyncSession, events: Sequence[CustomerRegistered]
) -> None:
    """Remember that customers exist, and since when; a replay changes nothing."""
    ids = {event.customer_id for event in events}
    erased = {
        row["customer_id"]
        for row in await store.rows_where(session, ErasedCustomer, ("customer_id",), ids)
    }
    # Only the id and the date: partners may see personal data only through consented
    # slices, so none is copied from the registration. The first registration wins.
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.customer_id not in erased and event.customer_id not in rows:
            rows[event.customer_id] = {
                "customer_id": event.customer_id,
                "registered_at": event.occurred_at,
            }
    await store.upsert(session, KnownCustomer, list(rows.values()), ("customer_id",))


async def note_registered_customer(session: AsyncSession, event: CustomerRegistered) -> None:
    """Remember that a customer exists, and since when; a replay changes nothing."""
    await note_registered_customers(session, [event])


# --- consents -----------------------------------------------------------------------


def _sharing_partner(run: Run, event: ConsentGranted | ConsentRevoked) -> Partner | None:
    """The live partner a partner_sharing consent change is about, if this event is one."""
    if not _about_sharing(event) or event.customer_id in run.erased:
        return None
    partner = run.partners.get(event.partner_id or "")
    if partner is None or partner.deleted_at is not None:
        return None
    return partner


def _about_sharing(event: ConsentGranted | ConsentRevoked) -> bool:
    return event.purpose == PARTNER_SHARING and bool(event.partner_id)


def _withdrawn_by_the_person(event: ConsentGranted | ConsentRevoked) -> bool:
    """False for a change a merge made: the survivor's grant narrows to what the person's
    other record allowed, so sharing stops, but the person withdrew nothing the partner
    received under that grant and the partner gets no deletion notice for it."""
    return event.source != MERGE


async def apply_consents(
    session: AsyncSession, events: Sequence[ConsentGranted | ConsentRevoked]
) -> None:
    """Apply a run of consent changes in log order; revocations delete the slices in this
    transaction, so the partner's next request already misses them."""
    sharing = [event for event in events if _about_sharing(event)]
    if not sharing:
        return
    pairs = {(event.customer_id, event.partner_id or "") for event in sharing}
    run = await load_run(session, {customer_id for customer_id, _ in pairs}, pairs=pairs)
    run.partners = await store.partners_by_id(session, {partner for _, partner in pairs})
    for event in sharing:
        if isinstance(event, ConsentGranted):
            _grant(run, event, utcnow())
        else:
            _revoke(run, event, utcnow())
    await run.write(session, utcnow())


async def apply_consent_granted(session: AsyncSession, event: ConsentGranted) -> None:
    """Start (or change) sharing the consented slices the partner is registered for."""
    await apply_consents(session, [event])


async def apply_consent_revoked(session: AsyncSession, event: ConsentRevoked) -> None:
    """Stop sharing the revoked slices (all of them when none are named), then notify."""
    await apply_consents(session, [event])


def _grant(run: Run, event: ConsentGranted, now: datetime) -> None:
    """Start (or change) sharing the consented slices the partner is registered for."""
    partner = _sharing_partner(run, event)
    if partner is None:
        return
    consent = run.consents.get((event.customer_id, partner.id))
    if consent is not None and event.version <= consent.version:
        return  # a replay, or older than what we already applied
    consent = consent or _new_consent(partner, event.customer_id, now)
    held = set(consent.slices) if consent.granted else set()
    effective = set(event.slices) & set(partner.slices)
    if not effective:
        # Nothing this partner may receive: the same as no consent at all.
        _withdraw(
            run,
            partner,
            consent,
            held,
            version=event.version,
            now=now,
            notify=_withdrawn_by_the_person(event),
        )
        return
    if not consent.granted:
        consent.granted_at = event.occurred_at
    granted_at = as_utc(consent.granted_at or event.occurred_at)
    consent.granted = True
    consent.slices = sorted(effective)
    consent.version = event.version
    consent.changed_at = now
    removed, added = held - effective, effective - held
    if removed:
        run.delete_slices(consent, removed)
        if _withdrawn_by_the_person(event):
            run.notices.append(
                notices.notice(partner, consent, "consent.revoked", removed, effective, now)
            )
    for slice_name in sorted(added & slices.STARTS_EMPTY):
        run.put_slice(consent, slice_name, slices.empty(slice_name, granted_at))
    if added & slices.FILLED_FROM_PROFILE:
        _request_fill(consent, now)
    run.save(consent)


def _revoke(run: Run, event: ConsentRevoked, now: datetime) -> None:
    """Stop sharing the revoked slices (all of them when none are named), then notify."""
    partner = _sharing_partner(run, event)
    if partner is None:
        return
    consent = run.consents.get((event.customer_id, partner.id))
    if consent is not None and event.version <= consent.version:
        return
    # Without a row yet, one is still written: it holds the version, so a grant
    # older than this revocation arriving late cannot start the sharing.
    consent = consent or _new_consent(partner, event.customer_id, now)
    held = set(consent.slices) if consent.granted else set()
    removed = held & set(event.slices) if event.slices else held
    remaining = held - removed
    if remaining:
        consent.slices = sorted(remaining)
        consent.version = event.version
        consent.changed_at = now
        consent.fill_token += 1
        run.delete_slices(consent, removed)
        if _withdrawn_by_the_person(event):
            run.notices.append(
                notices.notice(partner, consent, "consent.revoked", removed, remaining, now)
            )
        run.save(consent)
        return
    _withdraw(
        run,
        partner,
        consent,
        removed,
        version=event.version,
        now=now,
        notify=_withdrawn_by_the_person(event),
    )


def _withdraw(
    run: Run,
    partner: Partner,
    consent: PartnerConsent,
    removed: set[str],
    *,
    version: int,
    now: datetime,
    notify: bool = True,
) -> None:
    """No slice is shared any more: delete them all, keep only the consent's version;
    the partner is told to delete what it holds unless `notify` is False."""
    was_granted = consent.granted
    consent.granted = False
    consent.slices = []
    consent.version = version
    consent.granted_at = None
    consent.changed_at = now
    consent.fill_pending = False
    consent.fill_token += 1
    run.delete_slices(consent, None)
    if was_granted and notify:
        run.notices.append(notices.notice(partner, consent, "consent.revoked", removed, set(), now))
    run.save(consent)


async def _delete_slices(
    session: AsyncSession, consent: PartnerConsent, slice_names: set[str] | None
) -> None:
    await store.delete_slices(
        session,
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        slice_names=slice_names,
    )
    if slice_names is None or "contact" in slice_names:
        await store.delete_match_keys(
            session, customer_id=consent.customer_id, partner_id=consent.partner_id
        )


def _request_fill(consent: PartnerConsent, now: datetime) -> None:
    consent.fill_pending = True
    consent.fill_token += 1
    consent.fill_attempts = 0
    consent.fill_next_at = now


# --- what keeps the shared slices current ----------------------------------------------


def _update_slice(
    run: Run,
    consent: PartnerConsent,
    slice_name: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    now: datetime,
) -> bool:
    data = run.slice(consent, slice_name)
    if data is None:
        return False
    updated = change(data)
    if updated is None:
        return False
    run.put_slice(consent, slice_name, updated)
    consent.changed_at = now
    run.save(consent)
    return True


async def _run_for(
    session: AsyncSession, events: Sequence[Event], slice_names: Iterable[str]
) -> Run:
    return await load_run(
        session, {event.customer_id for event in events}, slice_names=set(slice_names)
    )


async def apply_customers_updated(session: AsyncSession, events: Sequence[CustomerUpdated]) -> None:
    """Carry profile changes into the contact and demographics slices that are shared."""
    run = await _run_for(session, events, ("contact", "demographics"))
    for event in events:
        now = utcnow()
        for consent in run.granted(event.customer_id):
            if consent.fill_pending:
                consent.fill_token += 1  # a fetch in flight may predate this change
                run.save(consent)
            for slice_name in ("contact", "demographics"):
                if slice_name not in consent.slices:
                    continue
                changed = _update_slice(
                    run,
                    consent,
                    slice_name,
                    partial(_changed_slice, slice_name, event.changes),
                    now,
                )
                contact = run.slice(consent, "contact")
                if changed and slice_name == "contact" and contact is not None:
                    run.set_match_keys(consent, contact)
    await run.write(session, utcnow())


def _changed_slice(
    slice_name: str, changes: Mapping[str, Any], data: Mapping[str, Any]
) -> dict[str, Any] | None:
    return slices.apply_changes(slice_name, data, changes)


async def apply_orders_completed(session: AsyncSession, events: Sequence[OrderCompleted]) -> None:
    """Count orders into the purchase summaries that are shared."""
    run = await _run_for(session, events, ("purchase_summary",))
    for event in events:
        now = utcnow()
        for consent in run.granted(event.customer_id, "purchase_summary"):
            _update_slice(
                run,
                consent,
                "purchase_summary",
                partial(
                    slices.count_order,
                    order_id=event.order_id,
                    revenue=event.revenue,
                    currency=event.currency,
                    occurred_at=as_utc(event.occurred_at),
                ),
                now,
            )
    await run.write(session, utcnow())


def _since_consent(consent: PartnerConsent, occurred_at: datetime) -> bool:
    return consent.granted_at is None or occurred_at >= as_utc(consent.granted_at)


async def apply_segment_changes(
    session: AsyncSession, events: Sequence[SegmentEntered | SegmentExited]
) -> None:
    """Track segment membership in the segments slices that are shared, from consent on."""
    run = await _run_for(session, events, ("segments",))
    for event in events:
        now = utcnow()
        occurred_at = as_utc(event.occurred_at)
        for consent in run.granted(event.customer_id, "segments"):
            if not _since_consent(consent, occurred_at):
                continue
            _update_slice(
                run,
                consent,
                "segments",
                partial(
                    slices.change_segment,
                    segment_id=event.segment_id,
                    name=event.segment_name,
                    entered=isinstance(event, SegmentEntered),
                    occurred_at=occurred_at,
                ),
                now,
            )
    await run.write(session, utcnow())


async def apply_loyalty_points(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """Credit points in the loyalty slices that are shared, from consent on (once per event id)."""
    events = [envelope.data for envelope in envelopes]
    run = await _run_for(session, events, ("loyalty",))
    for envelope in envelopes:
        event = envelope.data
        assert isinstance(event, LoyaltyPointsEarned)
        now = utcnow()
        occurred_at = as_utc(event.occurred_at)
        for consent in run.granted(event.customer_id, "loyalty"):
            if not _since_consent(consent, occurred_at):
                continue
            _update_slice(
                run,
                consent,
                "loyalty",
                partial(
                    slices.credit_points,
                    credit_id=envelope.id,
                    program=event.program,
                    points=event.points,
                    balance=event.balance,
                    occurred_at=occurred_at,
                ),
                now,
            )
    await run.write(session, utcnow())


async def apply_customer_merged(session: AsyncSession, event: CustomerMerged) -> None:
    """Move the duplicate's consents, slices and ledger links to the surviving customer."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await _is_erased(session, survivor):
        return
    now = utcnow()
    kept = {c.partner_id: c for c in await store.consents_of_customer(session, survivor)}
    for old in await store.consents_of_customer(session, merged):
        partner = await store.get_partner(session, old.partner_id)
        old_rows = await store.slices_of(session, merged, old.partner_id)
        await _delete_slices(session, old, None)
        await session.delete(old)
        if partner is None or partner.deleted_at is not None or not old.granted:
            continue
        current = kept.get(old.partner_id)
        if current is None:
            # The same person consented under the duplicate's id, so the consent moves.
            # Version 0: the survivor's consent versions count on its own record, and
            # its next change must apply. Any earlier decision of the survivor's
            # (even a revocation) is kept instead: when in doubt, do not share.
            current = _new_consent(partner, survivor, now)
            current.granted, current.slices, current.version = True, list(old.slices), 0
            current.granted_at = old.granted_at
            for row in old_rows:
                if row.slice in slices.STARTS_EMPTY:
                    fills.put_slice(session, current, row.slice, dict(row.data), now)
            if set(old.slices) & slices.FILLED_FROM_PROFILE:
                _request_fill(current, now)  # profile's survivor record is the truth now
            store.add(session, current)
        notices.notify(
            session,
            partner,
            old,
            "customer.merged",
            old.slices,
            [],
            now,
            merged_into=current.ref if current.granted else None,
        )
    await store.move_disclosure_subject(session, merged, survivor)
    await store.move_notifications(session, merged, survivor)
    await store.delete_known_customer(session, merged)


async def apply_customer_erased(session: AsyncSession, event: CustomerErased) -> None:
    """Delete everything about the customer, tell each partner, keep only a tombstone."""
    customer_id = event.customer_id
    if await _is_erased(session, customer_id):
        return
    now = utcnow()
    for consent in await store.consents_of_customer(session, customer_id):
        partner = await store.get_partner(session, consent.partner_id)
        if partner is not None and consent.granted:
            notices.notify(
                session, partner, consent, "customer.erased", consent.slices, [], now, erased=True
            )
    await store.delete_slices(session, customer_id=customer_id)
    await store.delete_match_keys(session, customer_id=customer_id)
    await store.delete_consents(session, customer_id=customer_id)
    await store.forget_disclosure_subject(session, customer_id)
    await store.anonymise_notifications(session, customer_id)
    await store.delete_known_customer(session, customer_id)
    store.add_tombstone(session, ErasedCustomer(customer_id=customer_id, erased_at=now))
    # Sent disclosure and contribution events name the customer: they go now, not after
    # the outbox retention; the ledger keeps its pseudonymous record.
    await outbox.delete_sent(session, [customer_id])
    checkpoint_after_commit(session)
