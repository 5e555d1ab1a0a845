"""What a partner asks of the slices: one customer by ref, the changes feed, matches of
hashed contacts, the overlap of an audience, and events it contributes. Each runs in the
caller's unit of work.

A partner is shown only the slices both consented and registered; every reply that shows
data is a ledger row plus a partner.data.disclosed outbox row, written in the transaction
of the read itself (`ledger.service.disclose`).
"""

from datetime import datetime, timedelta
from typing import Any

from rapport_events.base import utcnow
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.types import PartnerEventContributed
from rapport_partner_share.consents.models import PartnerConsent
from rapport_partner_share.errors import InvalidRequest, UnknownRef
from rapport_partner_share.ledger.service import disclose
from rapport_partner_share.partners.models import Partner
from rapport_partner_share.partners.service import PartnerRequest
from rapport_partner_share.shared import as_utc
from rapport_partner_share.slices import rules
from rapport_partner_share.slices.models import (
    ContributedEvent,
    ContributionAccepted,
    HashedIdentifiers,
    Match,
    OverlapReply,
    PartnerCustomer,
    SegmentOverlap,
)
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork

CONTRIBUTION_MAX_FUTURE = timedelta(minutes=5)
CONTRIBUTION_MAX_AGE = timedelta(days=30)


async def _shown_slices(
    uow: PartnerShareUnitOfWork, partner: Partner, consent: PartnerConsent
) -> dict[str, dict[str, Any]]:
    # Consent ∩ registration is checked again on the way out, not only on the way in.
    allowed = set(consent.slices) & set(partner.slices) if consent.granted else set()
    rows = await uow.slices.slices_of(consent.customer_id, partner.id)
    return {row.slice: rules.view(row.slice, row.data) for row in rows if row.slice in allowed}


async def _customer_reply(
    uow: PartnerShareUnitOfWork, request: PartnerRequest, consent: PartnerConsent
) -> PartnerCustomer:
    shown = await _shown_slices(uow, request.partner, consent)
    await disclose(uow, request, consent, shown, rules.disclosed_fields(shown))
    return PartnerCustomer(ref=consent.ref, slices=shown, changed_at=consent.changed_at)


async def read_customer(
    uow: PartnerShareUnitOfWork, request: PartnerRequest, ref: str
) -> PartnerCustomer:
    """The consented slices of one customer, by the partner's ref; audited."""
    consent = await uow.consents.granted_consent_by_ref(request.partner.id, ref)
    if consent is None:
        raise UnknownRef(ref)
    return await _customer_reply(uow, request, consent)


async def read_changes(
    uow: PartnerShareUnitOfWork,
    request: PartnerRequest,
    *,
    changed_since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[PartnerCustomer], str | None]:
    """Consenting customers whose shared data changed after `changed_since`; audited."""
    after = decode_cursor(cursor, datetime, str, refuse=InvalidRequest) if cursor else None
    since = as_utc(changed_since) if changed_since else None
    consents = await uow.consents.changed_consents(
        request.partner.id, since=since, after=after, limit=limit + 1
    )
    page, more = consents[:limit], len(consents) > limit
    customers = [await _customer_reply(uow, request, consent) for consent in page]
    last = page[-1] if more else None
    return customers, encode_cursor(as_utc(last.changed_at), last.customer_id) if last else None


async def _matched_consents(
    uow: PartnerShareUnitOfWork, partner: Partner, identifiers: HashedIdentifiers
) -> dict[str, tuple[PartnerConsent, list[tuple[str, str]]]]:
    """Consents (with contact shared) behind the submitted hashes, by customer id."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind, digests in (("email", identifiers.emails), ("phone", identifiers.phones)):
        for key in await uow.slices.find_matches(partner.id, kind, digests):
            found.setdefault(key.customer_id, []).append((kind, key.digest))
    consents = await uow.consents.granted_consents(partner.id, found)
    return {
        consent.customer_id: (consent, found[consent.customer_id])
        for consent in consents
        if "contact" in consent.slices and "contact" in partner.slices
    }


async def match(
    uow: PartnerShareUnitOfWork, request: PartnerRequest, identifiers: HashedIdentifiers
) -> list[Match]:
    """Refs for the hashes of consenting customers; an unknown and a non-consenting
    customer look the same (absent). Each match is audited as a contact disclosure."""
    matched = await _matched_consents(uow, request.partner, identifiers)
    matches: list[Match] = []
    for consent, keys in matched.values():
        kinds = sorted({kind for kind, _ in keys})
        await disclose(uow, request, consent, ["contact"], [f"contact.{k}_sha256" for k in kinds])
        matches.extend(Match(kind=kind, hash=digest, ref=consent.ref) for kind, digest in keys)
    return sorted(matches, key=lambda m: (m.kind, m.hash, m.ref))


async def overlap(
    uow: PartnerShareUnitOfWork,
    partner: Partner,
    identifiers: HashedIdentifiers,
    k_threshold: int,
) -> OverlapReply:
    """How many submitted hashes are consenting customers, and their segments; every count
    under k is withheld so no small group can be singled out."""
    matched = await _matched_consents(uow, partner, identifiers)
    count = len(matched)
    if count < k_threshold:
        return OverlapReply(
            submitted=identifiers.total(),
            matched=None,
            suppressed=True,
            k_threshold=k_threshold,
            segments=[],
        )
    with_segments = [c for c, _ in matched.values() if "segments" in c.slices]
    members: dict[str, tuple[str, int]] = {}
    if "segments" in partner.slices and with_segments:
        rows = await uow.slices.slices_of_many(
            partner.id, [c.customer_id for c in with_segments], "segments"
        )
        for row in rows:
            for segment_id, value in (row.data.get("members") or {}).items():
                name, seen = members.get(segment_id, (value["name"], 0))
                members[segment_id] = (name, seen + 1)
    return OverlapReply(
        submitted=identifiers.total(),
        matched=count,
        suppressed=False,
        k_threshold=k_threshold,
        segments=[
            SegmentOverlap(segment_id=segment_id, name=name, count=seen)
            for segment_id, (name, seen) in sorted(members.items())
            if seen >= k_threshold
        ],
    )


async def contribute_event(
    uow: PartnerShareUnitOfWork, request: PartnerRequest, body: ContributedEvent
) -> ContributionAccepted:
    """Publish partner.event.contributed for a consenting customer; others look unknown."""
    consent = await uow.consents.granted_consent_by_ref(request.partner.id, body.ref)
    if consent is None:
        raise UnknownRef(body.ref)
    now = utcnow()
    occurred_at = as_utc(body.occurred_at) if body.occurred_at else now
    if occurred_at > now + CONTRIBUTION_MAX_FUTURE:
        raise InvalidRequest("occurred_at is in the future")
    if occurred_at < now - CONTRIBUTION_MAX_AGE:
        raise InvalidRequest(f"occurred_at is older than {CONTRIBUTION_MAX_AGE.days} days")
    event_id = await uow.outbox.publish_one(
        PartnerEventContributed(
            customer_id=consent.customer_id,
            partner_id=request.partner.id,
            name=body.name,
            properties=body.properties,
            occurred_at=occurred_at,
        )
    )
    return ContributionAccepted(
        event_id=event_id, ref=body.ref, name=body.name, occurred_at=occurred_at
    )
