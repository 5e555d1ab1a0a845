"""The audit ledger's use cases: record a disclosure, list the ledger, and find a person's
entries by id or pseudonym after their erasure. Each runs in the caller's transaction, on
its unit of work."""

import re
from collections.abc import Iterable
from datetime import datetime

from rapport_events.base import utcnow
from rapport_events.types import PartnerDataDisclosed
from rapport_partner_share import security
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import InvalidRequest
from rapport_partner_share.ledger.models import (
    Disclosure,
    DisclosurePublic,
    ErasureNoticeStatus,
    SubjectDisclosure,
    SubjectLedger,
)
from rapport_partner_share.partners.service import PartnerRequest
from rapport_partner_share.shared import as_utc
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork

# Ledger ids are 64-bit integers; only ASCII digits count ("²".isdigit() is true).
LEDGER_CURSOR = re.compile(r"[0-9]{1,19}")
LEDGER_ID_MAX = 2**63 - 1


async def disclose(
    uow: PartnerShareUnitOfWork,
    request: PartnerRequest,
    consent: PartnerConsent,
    shown_slices: Iterable[str],
    fields: list[str],
) -> None:
    """The ledger row and its partner.data.disclosed event, in the caller's transaction."""
    now = utcnow()
    partner = request.partner
    version = consent.version or None
    event = PartnerDataDisclosed(
        customer_id=consent.customer_id,
        partner_id=partner.id,
        partner_name=partner.name,
        partner_ref=consent.ref,
        slices=tuple(sorted(shown_slices)),  # type: ignore[arg-type]
        fields=tuple(fields),
        purpose=request.purpose,
        consent_version=version,
        request_id=request.request_id,
        occurred_at=now,
    )
    event_id = await uow.outbox.publish_one(event)
    await uow.ledger.append_disclosure(
        Disclosure(
            event_id=event_id,
            partner_id=partner.id,
            partner_name=partner.name,
            partner_ref=consent.ref,
            slices=list(event.slices),
            fields=fields,
            purpose=request.purpose,
            consent_version=version,
            request_id=request.request_id,
            disclosed_at=now,
            subject=security.subject_pseudonym(request.ledger_key, consent.customer_id),
        ),
        consent.customer_id,
    )


async def ledger_page(
    uow: PartnerShareUnitOfWork,
    *,
    partner_id: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[DisclosurePublic], str | None]:
    """Audit ledger entries, newest first."""
    before_id = _ledger_cursor(cursor)
    rows = await uow.ledger.list_disclosures(
        partner_id=partner_id,
        customer_id=customer_id,
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
        before_id=before_id,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = str(page[-1][0].id) if len(rows) > limit else None
    return [DisclosurePublic.of(d, customer) for d, customer in page], next_cursor


def _ledger_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not LEDGER_CURSOR.fullmatch(cursor) or int(cursor) > LEDGER_ID_MAX:
        raise InvalidRequest("cursor is not one this API returned")
    return int(cursor)


async def subject_ledger(
    uow: PartnerShareUnitOfWork,
    ledger_key: str,
    *,
    customer_id: str | None = None,
    subject: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> SubjectLedger:
    """The ledger entries about one person, found by id or by pseudonym, newest first; they
    outlive the person's erasure, with whether each partner acknowledged its notice."""
    if (customer_id is None) == (subject is None):
        raise InvalidRequest("give either customer_id or subject, not both")
    if subject is None:
        assert customer_id is not None
        subject = security.subject_pseudonym(ledger_key, customer_id)
    rows = await uow.ledger.disclosures_of_subject(
        subject, before_id=_ledger_cursor(cursor), limit=limit + 1
    )
    page = rows[:limit]
    sent = await uow.notices.erasure_notices({(d.partner_id, d.partner_ref) for d in page})
    return SubjectLedger(
        subject=subject,
        disclosures=[
            SubjectDisclosure(
                id=d.event_id,
                partner_id=d.partner_id,
                partner_name=d.partner_name,
                slices=d.slices,
                fields=d.fields,
                purpose=d.purpose,
                consent_version=d.consent_version,
                disclosed_at=d.disclosed_at,
                erasure_notice=(
                    ErasureNoticeStatus.of(notice)
                    if (notice := sent.get((d.partner_id, d.partner_ref))) is not None
                    else None
                ),
            )
            for d in page
        ],
        next_cursor=str(page[-1].id) if len(rows) > limit else None,
    )
