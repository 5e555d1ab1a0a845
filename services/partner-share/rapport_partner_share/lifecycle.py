"""What touches every domain at once: a merge of two customers, an erasure, the export, on
the unit of work (`PartnerShareUnitOfWork`).

Merges and erasures are rare and move many tables: they come one event at a time, and
their handlers build the SQL unit of work on the consumer's session. Both tell each
partner that received the customer's data through a signed notice.
"""

from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_events.types import CustomerErased, CustomerMerged
from rapport_partner_share.consents.projection import new_consent, request_fill
from rapport_partner_share.customers.models import ErasedCustomer
from rapport_partner_share.ledger import service as ledger
from rapport_partner_share.notices import service as notices
from rapport_partner_share.notices.models import NotificationPublic
from rapport_partner_share.slices import fills, rules
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork, SqlPartnerShareUnitOfWork

SERVICE = "partner-share"


class CustomerExport(BaseModel):
    """Everything partner-share holds about one customer (GDPR access)."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# --- merge ---------------------------------------------------------------------------


async def merge_customer(uow: PartnerShareUnitOfWork, event: CustomerMerged) -> None:
    """Move the duplicate's consents, slices and ledger links to the surviving customer."""
    survivor, merged = event.customer_id, event.merged_customer_id
    if survivor == merged or await uow.customers.is_erased(survivor):
        return
    now = utcnow()
    kept = {c.partner_id: c for c in await uow.consents.consents_of_customer(survivor)}
    for old in await uow.consents.consents_of_customer(merged):
        partner = await uow.partners.get_partner(old.partner_id)
        old_rows = await uow.slices.slices_of(merged, old.partner_id)
        await uow.slices.forget_shares(merged, old.partner_id)
        await uow.consents.delete(old)
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
                    fills.put_slice(uow.slices, current, row.slice, dict(row.data), now)
            if set(old.slices) & rules.FILLED_FROM_PROFILE:
                request_fill(current, now)  # profile's survivor record is the truth now
            uow.consents.add(current)
        merged_into = current.ref if current.granted else None
        notice = notices.notice(
            partner, old, "customer.merged", old.slices, [], now, merged_into=merged_into
        )
        uow.notices.add(notice)
    await uow.ledger.move_disclosure_subject(merged, survivor)
    await uow.notices.move_notifications(merged, survivor)
    await uow.customers.delete_known_customer(merged)


async def apply_merge(session: AsyncSession, event: CustomerMerged) -> None:
    """A merge from the log, in the consumer's transaction."""
    await merge_customer(SqlPartnerShareUnitOfWork(session), event)


# --- erasure -------------------------------------------------------------------------


async def erase_customer(uow: PartnerShareUnitOfWork, customer_id: str) -> None:
    """Delete everything about the customer, tell each partner, keep only a tombstone."""
    if await uow.customers.is_erased(customer_id):
        return
    now = utcnow()
    for consent in await uow.consents.consents_of_customer(customer_id):
        partner = await uow.partners.get_partner(consent.partner_id)
        if partner is not None and consent.granted:
            notice = notices.notice(
                partner, consent, "customer.erased", consent.slices, [], now, erased=True
            )
            uow.notices.add(notice)
    await uow.slices.forget_shares(customer_id)
    await uow.consents.delete_consents_of(customer_id)
    await uow.ledger.forget_disclosure_subject(customer_id)
    await uow.notices.anonymise_notifications(customer_id)
    await uow.customers.delete_known_customer(customer_id)
    uow.customers.add(ErasedCustomer(customer_id=customer_id, erased_at=now))
    # Sent disclosure and contribution events name the customer: they go now, not after
    # the outbox retention; the ledger keeps its pseudonymous record.
    await uow.outbox.forget_sent([customer_id])


async def apply_erasure(session: AsyncSession, event: CustomerErased) -> None:
    """An erasure from the log, in the consumer's transaction."""
    await erase_customer(SqlPartnerShareUnitOfWork(session), event.customer_id)


# --- export --------------------------------------------------------------------------


def _row(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude=exclude)
    return dumped


async def export_customer(uow: PartnerShareUnitOfWork, customer_id: str) -> CustomerExport:
    """Everything held about one customer, from every table (empty lists when nothing)."""
    known = await uow.customers.get_known_customer(customer_id)
    disclosures, cursor = await ledger.ledger_page(uow, customer_id=customer_id, limit=1000)
    while cursor is not None:
        more, cursor = await ledger.ledger_page(
            uow, customer_id=customer_id, cursor=cursor, limit=1000
        )
        disclosures.extend(more)
    notifications = await uow.notices.list_notifications(customer_id=customer_id, limit=10_000)
    tombstone = await uow.customers.get_tombstone(customer_id)
    return CustomerExport(
        service=SERVICE,
        customer_id=customer_id,
        records={
            "known_customers": [_row(known)] if known else [],
            "consents": [
                _row(c, {"customer_id", "fill_token", "fill_attempts", "fill_next_at"})
                for c in await uow.consents.consents_of_customer(customer_id)
            ],
            "shared_slices": [
                _row(s, {"customer_id"}) for s in await uow.slices.slices_of(customer_id)
            ],
            "match_keys": [
                _row(k, {"customer_id"}) for k in await uow.slices.match_keys_of(customer_id)
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
