"""Profile-backed slices: after a consent, the filler fetches them from profile over HTTP
and stores them here only if the consent did not change meanwhile (`FillJob.token`).

The filler's steps take a unit of work; `put_slice` takes a slices store, so the merge
writes its slices the same way."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rapport_events.base import utcnow
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices import rules
from rapport_partner_share.slices.models import SharedSlice
from rapport_partner_share.slices.store import SliceStore
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork

log = logging.getLogger(__name__)

FILL_MAX_BACKOFF = timedelta(minutes=5)


def put_slice(
    slices: SliceStore,
    consent: PartnerConsent,
    slice_name: str,
    data: dict[str, Any],
    now: datetime,
    existing: SharedSlice | None = None,
) -> None:
    """Write one slice of a consent on the ORM (fills and merges: one row at a time)."""
    row = existing or SharedSlice(
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        slice=slice_name,
        data=data,
        updated_at=now,
    )
    row.data = data
    row.updated_at = now
    slices.add(row)


async def _set_match_keys(
    uow: PartnerShareUnitOfWork, consent: PartnerConsent, contact: Mapping[str, Any]
) -> None:
    keys = []
    if contact.get("email"):
        keys.append(("email", security.email_digest(str(contact["email"]))))
    if contact.get("phone"):
        keys.append(("phone", security.phone_digest(str(contact["phone"]))))
    await uow.slices.replace_match_keys(consent.customer_id, consent.partner_id, keys)


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


async def due_fills(
    uow: PartnerShareUnitOfWork, limit: int = 20, lease: timedelta = timedelta(seconds=30)
) -> list[FillJob]:
    """Consents waiting for profile data whose next attempt is due, leased to this filler.

    The lease (the next attempt's time, pushed out) keeps other replicas from asking profile
    for the same consent meanwhile; a filler that dies leaves it to run out.
    """
    now = utcnow()
    jobs = []
    for consent in await uow.consents.due_fills(now, limit):
        jobs.append(
            FillJob(
                customer_id=consent.customer_id,
                partner_id=consent.partner_id,
                token=consent.fill_token,
                slices=frozenset(consent.slices) & rules.FILLED_FROM_PROFILE,
                attempts=consent.fill_attempts,
            )
        )
        consent.fill_next_at = now + lease
        uow.consents.add(consent)
    return jobs


async def complete_fill(
    uow: PartnerShareUnitOfWork,
    job: FillJob,
    *,
    customer: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    fetched_at: datetime,
) -> bool:
    """Store what profile answered; False when the consent changed while we fetched.

    `customer` None means profile does not know the customer: the slices stay empty.
    """
    consent = await uow.consents.get_consent(job.customer_id, job.partner_id, lock=True)
    if consent is None or not consent.granted or consent.fill_token != job.token:
        return False
    now = utcnow()
    held = set(consent.slices)
    if customer is not None:
        for slice_name in ("contact", "demographics"):
            if slice_name in held:
                data = rules.from_profile(slice_name, customer)
                existing = await uow.slices.get_slice(
                    consent.customer_id, consent.partner_id, slice_name
                )
                put_slice(uow.slices, consent, slice_name, data, now, existing)
                if slice_name == "contact":
                    await _set_match_keys(uow, consent, data)
    if "purchase_summary" in held:
        existing = await uow.slices.get_slice(
            consent.customer_id, consent.partner_id, "purchase_summary"
        )
        summary = rules.from_metrics(metrics, fetched_at) if metrics is not None else None
        if summary is not None:
            put_slice(uow.slices, consent, "purchase_summary", summary, now, existing)
        elif existing is None:
            since = as_utc(consent.granted_at or now)
            empty = rules.empty("purchase_summary", since)
            put_slice(uow.slices, consent, "purchase_summary", empty, now)
    consent.fill_pending = False
    consent.fill_next_at = None
    consent.changed_at = now
    uow.consents.add(consent)
    return True


async def postpone_fill(uow: PartnerShareUnitOfWork, job: FillJob, error: str) -> None:
    """Profile did not answer: try again later, with exponential backoff."""
    consent = await uow.consents.get_consent(job.customer_id, job.partner_id, lock=True)
    if consent is None or consent.fill_token != job.token:
        return
    consent.fill_attempts += 1
    delay = min(timedelta(seconds=0.5 * 2 ** min(consent.fill_attempts, 12)), FILL_MAX_BACKOFF)
    consent.fill_next_at = utcnow() + delay
    uow.consents.add(consent)
    log.warning(
        "profile data for %s/%s unavailable (%s); retry in %ss",
        job.customer_id,
        job.partner_id,
        error,
        delay.total_seconds(),
    )
