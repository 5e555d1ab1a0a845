"""The consented projection: what each partner may see of each customer, kept current.

Consent events start, narrow and stop the sharing; customer, order, segment and
loyalty events keep the shared slices current while the consent stands; merges
and erasures move or delete them. Revocation and erasure delete the slices in the
transaction that applies the event, so the partner's next request already misses
them; the partner is then told through a signed notice (`notices`).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
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
from rapport_partner_share import notices, security, slices, store
from rapport_partner_share.models import (
    ErasedCustomer,
    KnownCustomer,
    Partner,
    PartnerConsent,
    SharedSlice,
)
from rapport_partner_share.slices import as_utc

log = logging.getLogger(__name__)

PARTNER_SHARING = "partner_sharing"
FILL_MAX_BACKOFF = timedelta(minutes=5)


async def note_registered_customer(
    session: AsyncSession, event: CustomerRegistered
) -> KnownCustomer | None:
    """Remember that a customer exists, and since when; a replay changes nothing."""
    if await store.get_tombstone(session, event.customer_id) is not None:
        return None
    existing = await store.get_known_customer(session, event.customer_id)
    if existing is not None:
        return existing
    # Only the id and the date: partners may see personal data only through consented
    # slices, so none is copied from the registration.
    customer = KnownCustomer(customer_id=event.customer_id, registered_at=event.occurred_at)
    store.add_known_customer(session, customer)
    await session.flush()
    return customer


async def _is_erased(session: AsyncSession, customer_id: str) -> bool:
    return await store.get_tombstone(session, customer_id) is not None


async def _sharing_partner(
    session: AsyncSession, event: ConsentGranted | ConsentRevoked
) -> Partner | None:
    """The live partner a partner_sharing consent change is about, if this event is one."""
    if event.purpose != PARTNER_SHARING or not event.partner_id:
        return None
    if await _is_erased(session, event.customer_id):
        return None
    partner = await store.get_partner(session, event.partner_id)
    if partner is None or partner.deleted_at is not None:
        return None
    return partner


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


async def apply_consent_granted(session: AsyncSession, event: ConsentGranted) -> None:
    """Start (or change) sharing the consented slices the partner is registered for."""
    partner = await _sharing_partner(session, event)
    if partner is None:
        return
    now = utcnow()
    consent = await store.get_consent(session, event.customer_id, partner.id)
    if consent is not None and event.version <= consent.version:
        return  # a replay, or older than what we already applied
    consent = consent or _new_consent(partner, event.customer_id, now)
    held = set(consent.slices) if consent.granted else set()
    effective = set(event.slices) & set(partner.slices)
    if not effective:
        # Nothing this partner may receive: the same as no consent at all.
        await _withdraw(session, partner, consent, held, version=event.version, now=now)
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
        await _delete_slices(session, consent, removed)
        notices.notify(session, partner, consent, "consent.revoked", removed, effective, now)
    for slice_name in sorted(added & slices.STARTS_EMPTY):
        _put_slice(session, consent, slice_name, slices.empty(slice_name, granted_at), now)
    if added & slices.FILLED_FROM_PROFILE:
        _request_fill(consent, now)
    store.add(session, consent)


async def apply_consent_revoked(session: AsyncSession, event: ConsentRevoked) -> None:
    """Stop sharing the revoked slices (all of them when none are named), then notify."""
    partner = await _sharing_partner(session, event)
    if partner is None:
        return
    now = utcnow()
    consent = await store.get_consent(session, event.customer_id, partner.id)
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
        await _delete_slices(session, consent, removed)
        notices.notify(session, partner, consent, "consent.revoked", removed, remaining, now)
        store.add(session, consent)
        return
    await _withdraw(session, partner, consent, removed, version=event.version, now=now)


async def _withdraw(
    session: AsyncSession,
    partner: Partner,
    consent: PartnerConsent,
    removed: set[str],
    *,
    version: int,
    now: datetime,
) -> None:
    """No slice is shared any more: delete them all, keep only the consent's version."""
    was_granted = consent.granted
    consent.granted = False
    consent.slices = []
    consent.version = version
    consent.granted_at = None
    consent.changed_at = now
    consent.fill_pending = False
    consent.fill_token += 1
    await _delete_slices(session, consent, None)
    if was_granted:
        notices.notify(session, partner, consent, "consent.revoked", removed, set(), now)
    store.add(session, consent)


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


def _put_slice(
    session: AsyncSession,
    consent: PartnerConsent,
    slice_name: str,
    data: dict[str, Any],
    now: datetime,
    existing: SharedSlice | None = None,
) -> None:
    row = existing or SharedSlice(
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        slice=slice_name,
        data=data,
        updated_at=now,
    )
    row.data = data
    row.updated_at = now
    store.add(session, row)


async def _set_match_keys(
    session: AsyncSession, consent: PartnerConsent, contact: Mapping[str, Any]
) -> None:
    keys = []
    if contact.get("email"):
        keys.append(("email", security.email_digest(str(contact["email"]))))
    if contact.get("phone"):
        keys.append(("phone", security.phone_digest(str(contact["phone"]))))
    await store.replace_match_keys(session, consent.customer_id, consent.partner_id, keys)


@dataclass(frozen=True)
class FillJob:
    """A consent whose profile-backed slices must be fetched; `token` detects staleness."""

    customer_id: str
    partner_id: str
    token: int
    slices: frozenset[str]
    attempts: int

    @property
    def needs_customer(self) -> bool:
        return bool(self.slices & {"contact", "demographics"})

    @property
    def needs_metrics(self) -> bool:
        return "purchase_summary" in self.slices


async def due_fills(session: AsyncSession, limit: int = 20) -> list[FillJob]:
    """Consents waiting for profile data whose next attempt is due."""
    return [
        FillJob(
            customer_id=consent.customer_id,
            partner_id=consent.partner_id,
            token=consent.fill_token,
            slices=frozenset(consent.slices) & slices.FILLED_FROM_PROFILE,
            attempts=consent.fill_attempts,
        )
        for consent in await store.due_fills(session, utcnow(), limit)
    ]


async def complete_fill(
    session: AsyncSession,
    job: FillJob,
    *,
    customer: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    fetched_at: datetime,
) -> bool:
    """Store what profile answered; False when the consent changed while we fetched.

    `customer` None means profile does not know the customer: the slices stay empty.
    """
    consent = await store.get_consent(session, job.customer_id, job.partner_id)
    if consent is None or not consent.granted or consent.fill_token != job.token:
        return False
    now = utcnow()
    held = set(consent.slices)
    if customer is not None:
        for slice_name in ("contact", "demographics"):
            if slice_name in held:
                data = slices.from_profile(slice_name, customer)
                existing = await store.get_slice(
                    session, consent.customer_id, consent.partner_id, slice_name
                )
                _put_slice(session, consent, slice_name, data, now, existing)
                if slice_name == "contact":
                    await _set_match_keys(session, consent, data)
    if "purchase_summary" in held:
        existing = await store.get_slice(
            session, consent.customer_id, consent.partner_id, "purchase_summary"
        )
        summary = slices.from_metrics(metrics, fetched_at) if metrics is not None else None
        if summary is not None:
            _put_slice(session, consent, "purchase_summary", summary, now, existing)
        elif existing is None:
            since = as_utc(consent.granted_at or now)
            _put_slice(
                session, consent, "purchase_summary", slices.empty("purchase_summary", since), now
            )
    consent.fill_pending = False
    consent.fill_next_at = None
    consent.changed_at = now
    store.add(session, consent)
    return True


async def postpone_fill(session: AsyncSession, job: FillJob, error: str) -> None:
    """Profile did not answer: try again later, with exponential backoff."""
    consent = await store.get_consent(session, job.customer_id, job.partner_id)
    if consent is None or consent.fill_token != job.token:
        return
    consent.fill_attempts += 1
    delay = min(timedelta(seconds=0.5 * 2 ** min(consent.fill_attempts, 12)), FILL_MAX_BACKOFF)
    consent.fill_next_at = utcnow() + delay
    store.add(session, consent)
    log.warning(
        "profile data for %s/%s unavailable (%s); retry in %ss",
        job.customer_id,
        job.partner_id,
        error,
        delay.total_seconds(),
    )


async def _granted_with(
    session: AsyncSession, customer_id: str, slice_name: str
) -> list[PartnerConsent]:
    if await _is_erased(session, customer_id):
        return []
    return [
        consent
        for consent in await store.consents_of_customer(session, customer_id, granted_only=True)
        if slice_name in consent.slices
    ]


async def _update_slice(
    session: AsyncSession,
    consent: PartnerConsent,
    slice_name: str,
    change: Any,
    now: datetime,
) -> bool:
    row = await store.get_slice(session, consent.customer_id, consent.partner_id, slice_name)
    if row is None:
        return False
    updated = change(row.data)
    if updated is None:
        return False
    _put_slice(session, consent, slice_name, updated, now, row)
    consent.changed_at = now
    store.add(session, consent)
    return True


async def apply_customer_updated(session: AsyncSession, event: CustomerUpdated) -> None:
    """Carry profile changes into the contact and demographics slices that are shared."""
    if await _is_erased(session, event.customer_id):
        return
    now = utcnow()
    for consent in await store.consents_of_customer(session, event.customer_id, granted_only=True):
        if consent.fill_pending:
            consent.fill_token += 1  # a fetch in flight may predate this change
            store.add(session, consent)
        for slice_name in ("contact", "demographics"):
            if slice_name not in consent.slices:
                continue
            changed = await _update_slice(
                session,
                consent,
                slice_name,
                lambda data, name=slice_name: slices.apply_changes(name, data, event.changes),
                now,
            )
            if changed and slice_name == "contact":
                row = await store.get_slice(
                    session, consent.customer_id, consent.partner_id, "contact"
                )
                if row is not None:
                    await _set_match_keys(session, consent, row.data)


async def apply_order_completed(session: AsyncSession, event: OrderCompleted) -> None:
    """Count an order into the purchase summaries that are shared."""
    now = utcnow()
    for consent in await _granted_with(session, event.customer_id, "purchase_summary"):
        await _update_slice(
            session,
            consent,
            "purchase_summary",
            lambda data: slices.count_order(
                data,
                order_id=event.order_id,
                revenue=event.revenue,
                currency=event.currency,
                occurred_at=as_utc(event.occurred_at),
            ),
            now,
        )


async def apply_segment_change(
    session: AsyncSession, event: SegmentEntered | SegmentExited
) -> None:
    """Track segment membership in the segments slices that are shared, from consent on."""
    now = utcnow()
    occurred_at = as_utc(event.occurred_at)
    for consent in await _granted_with(session, event.customer_id, "segments"):
        if consent.granted_at is not None and occurred_at < as_utc(consent.granted_at):
            continue
        await _update_slice(
            session,
            consent,
            "segments",
            lambda data: slices.change_segment(
                data,
                segment_id=event.segment_id,
                name=event.segment_name,
                entered=isinstance(event, SegmentEntered),
                occurred_at=occurred_at,
            ),
            now,
        )


async def apply_loyalty_points(
    session: AsyncSession, event: LoyaltyPointsEarned, credit_id: str
) -> None:
    """Credit points in the loyalty slices that are shared, from consent on."""
    now = utcnow()
    occurred_at = as_utc(event.occurred_at)
    for consent in await _granted_with(session, event.customer_id, "loyalty"):
        if consent.granted_at is not None and occurred_at < as_utc(consent.granted_at):
            continue
        await _update_slice(
            session,
            consent,
            "loyalty",
            lambda data: slices.credit_points(
                data,
                credit_id=credit_id,
                program=event.program,
                points=event.points,
                balance=event.balance,
                occurred_at=occurred_at,
            ),
            now,
        )


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
                    _put_slice(session, current, row.slice, dict(row.data), now)
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
