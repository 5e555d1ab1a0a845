"""What the consent events do: a partner_sharing grant starts or changes what a partner
may see, a revocation narrows or stops it.

Revocations delete the slices in the transaction that applies the event, so the partner's
next request already misses them; the partner is then told through a signed notice
(`notices`). The consent events arrive in runs (`@batch`): a run reads what it needs with
one `IN` query per table (`runs.load_run`), applies its events in log order in memory
(`runs.Run`), and writes each table back with multi-row statements. A single event is a
run of one.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.consumer import batch
from rapport_events.types import ConsentGranted, ConsentRevoked
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.notices import service as notices
from rapport_partner_share.partners import store as partner_store
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.runs import Run, load_run
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices import rules

PARTNER_SHARING = "partner_sharing"
MERGE = "merge"  # the source profile gives the consent changes a merge makes


def new_consent(partner: Partner, customer_id: str, now: datetime) -> PartnerConsent:
    """A consent row that shares nothing yet, under the partner's pseudonym of the customer."""
    return PartnerConsent(
        customer_id=customer_id,
        partner_id=partner.id,
        ref=security.pseudonym(partner.ref_key, customer_id),
        granted=False,
        slices=[],
        version=0,
        changed_at=now,
    )


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


@batch
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
    run.partners = await partner_store.partners_by_id(session, {partner for _, partner in pairs})
    for event in sharing:
        if isinstance(event, ConsentGranted):
            _grant(run, event, utcnow())
        else:
            _revoke(run, event, utcnow())
    await run.write(session, utcnow())


def _grant(run: Run, event: ConsentGranted, now: datetime) -> None:
    """Start (or change) sharing the consented slices the partner is registered for."""
    partner = _sharing_partner(run, event)
    if partner is None:
        return
    consent = run.consents.get((event.customer_id, partner.id))
    if consent is not None and event.version <= consent.version:
        return  # a replay, or older than what we already applied
    consent = consent or new_consent(partner, event.customer_id, now)
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
    for slice_name in sorted(added & rules.STARTS_EMPTY):
        run.put_slice(consent, slice_name, rules.empty(slice_name, granted_at))
    if added & rules.FILLED_FROM_PROFILE:
        request_fill(consent, now)
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
    consent = consent or new_consent(partner, event.customer_id, now)
    held = set(consent.slices) if consent.granted else set()
    removed = held & set(event.slices) if event.slices else held
    remaining = held - removed
    if remaining:
        consent.slices = sorted(remaining)
        consent.version = event.version
        consent.changed_at = now
        drop_fill_in_flight(consent, now)
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


def drop_fill_in_flight(consent: PartnerConsent, now: datetime) -> None:
    """A fetch in flight may predate this change: its answer is dropped (the token moves),
    and a fill still pending is due again now, not when that fetch's lease runs out."""
    consent.fill_token += 1
    if consent.fill_pending:
        consent.fill_next_at = now


def request_fill(consent: PartnerConsent, now: datetime) -> None:
    """Ask the filler for the consent's profile-backed slices, dropping any fetch in flight."""
    consent.fill_pending = True
    consent.fill_token += 1
    consent.fill_attempts = 0
    consent.fill_next_at = now
