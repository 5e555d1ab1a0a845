"""What touches every domain at once: a merge of two customers, an erasure, the export.

Merges and erasures are rare and move many tables: they come one event at a time, on the
ORM. Both tell each partner that received the customer's data through a signed notice.
"""

from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import outbox
from rapport_events.base import utcnow
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased, CustomerMerged
from rapport_partner_share.consents import store as consent_store
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.consents.projection import new_consent, request_fill
from rapport_partner_share.customers import store as customer_store
from rapport_partner_share.customers.models import ErasedCustomer
from rapport_partner_share.ledger import service as ledger
from rapport_partner_share.ledger import store as ledger_store
from rapport_partner_share.notices import service as notices
from rapport_partner_share.notices import store as notice_store
from rapport_partner_share.notices.models import NotificationPublic
from rapport_partner_share.partners import store as partner_store
from rapport_partner_share.slices import fills, rules
from rapport_partner_share.slices import store as slice_store
from rapport_partner_share.slices.store import SqlSliceStore
from rapport_partner_share.unit_of_work import SqlPartnerShareUnitOfWork

SERVICE = "partner-share"


class CustomerExport(BaseModel):
    """Everything partner-share holds about one customer (GDPR access)."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# --- merge ---------------------------------------------------------------------------


async def _delete_slices(
    session: AsyncSession, consent: PartnerConsent, slice_names: set[str] | None
) -> None:
    await slice_store.delete_slices(
        session,
        customer_id=consent.customer_id,
        partner_id=consent.partner_id,
        slice_names=slice_names,
    )
    if slice_names is None or "contact" in slice_names:
        await slice_store.delete_match_keys(
            session, customer_id=consent.customer_id, partner_id=consent.partner_id
        )


async def apply_customer_merged(session: AsyncSession, event: CustomerMerged) -> None:
    """Move the duplicate's consents, slices and ledger links to the surviving customer."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await customer_store.is_erased(session, survivor):
        return
    now = utcnow()
    kept = {c.partner_id: c for c in await consent_store.consents_of_customer(session, survivor)}
    slices = SqlSliceStore(session)
    for old in await consent_store.consents_of_customer(session, merged):
        partner = await partner_store.get_partner(session, old.partner_id)
        old_rows = await slice_store.slices_of(session, merged, old.partner_id)
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
            current = new_consent(partner, survivor, now)
            current.granted, current.slices, current.version = True, list(old.slices), 0
            current.granted_at = old.granted_at
            for row in old_rows:
                if row.slice in rules.STARTS_EMPTY:
                    fills.put_slice(slices, current, row.slice, dict(row.data), now)
            if set(old.slices) & rules.FILLED_FROM_PROFILE:
                request_fill(current, now)  # profile's survivor record is the truth now
            consent_store.add(session, current)
        merged_into = current.ref if current.granted else None
        notice = notices.notice(
            partner, old, "customer.merged", old.slices, [], now, merged_into=merged_into
        )
        notice_store.add_notification(session, notice)
    await ledger_store.move_disclosure_subject(session, merged, survivor)
    await notice_store.move_notifications(session, merged, survivor)
    await customer_store.delete_known_customer(session, merged)


# --- erasure -------------------------------------------------------------------------


async def apply_customer_erased(session: AsyncSession, event: CustomerErased) -> None:
    """Delete everything about the customer, tell each partner, keep only a tombstone."""
    customer_id = event.customer_id
    if await customer_store.is_erased(session, customer_id):
        return
    now = utcnow()
    for consent in await consent_store.consents_of_customer(session, customer_id):
        partner = await partner_store.get_partner(session, consent.partner_id)
        if partner is not None and consent.granted:
            notice = notices.notice(
                partner, consent, "customer.erased", consent.slices, [], now, erased=True
            )
            notice_store.add_notification(session, notice)
    await slice_store.delete_slices(session, customer_id=customer_id)
    await slice_store.delete_match_keys(session, customer_id=customer_id)
    await consent_store.delete_consents(session, customer_id=customer_id)
    await ledger_store.forget_disclosure_subject(session, customer_id)
    await notice_store.anonymise_notifications(session, customer_id)
    await customer_store.delete_known_customer(session, customer_id)
    customer_store.add_tombstone(session, ErasedCustomer(customer_id=customer_id, erased_at=now))
    # Sent disclosure and contribution events name the customer: they go now, not after
    # the outbox retention; the ledger keeps its pseudonymous record.
    await outbox.delete_sent(session, [customer_id])
    checkpoint_after_commit(session)


# --- export --------------------------------------------------------------------------


def _row(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude=exclude)
    return dumped


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """Everything held about one customer, from every table (empty lists when nothing)."""
    known = await customer_store.get_known_customer(session, customer_id)
    uow = SqlPartnerShareUnitOfWork(session)
    disclosures, cursor = await ledger.ledger_page(uow, customer_id=customer_id, limit=1000)
    while cursor is not None:
        more, cursor = await ledger.ledger_page(
            uow, customer_id=customer_id, cursor=cursor, limit=1000
        )
        disclosures.extend(more)
    notifications = await notice_store.list_notifications(
        session, customer_id=customer_id, limit=10_000
    )
    tombstone = await customer_store.get_tombstone(session, customer_id)
    return CustomerExport(
        service=SERVICE,
        customer_id=customer_id,
        records={
            "known_customers": [_row(known)] if known else [],
            "consents": [
                _row(c, {"customer_id", "fill_token", "fill_attempts", "fill_next_at"})
                for c in await consent_store.consents_of_customer(session, customer_id)
            ],
            "shared_slices": [
                _row(s, {"customer_id"}) for s in await slice_store.slices_of(session, customer_id)
            ],
            "match_keys": [
                _row(k, {"customer_id"})
                for k in await slice_store.match_keys_of(session, customer_id)
            ],
            "disclosures": [d.model_dump(mode="json") for d in disclosures],
            "notifications": [
                NotificationPublic.of(n).model_dump(mode="json") for n in notifications
            ],
            # The id alone, kept so late events are dropped; "erasure" in the name tells
            # profile's erasure check that this record is allowed to stay.
            "erasure_tombstones": [_row(tombstone)] if tombstone else [],
        },
    )
