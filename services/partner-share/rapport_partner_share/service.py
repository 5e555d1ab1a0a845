"""Partner-share's use cases for partners and operators; each runs in the caller's transaction.

Partners and their keys, the partner API and the audit ledger. What a partner
may see is kept by `projection`; every disclosure made here is a ledger row plus
a partner.data.disclosed outbox row, written in the transaction of the read
itself, and a partner is shown only the slices both consented and registered.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import errors, outbox
from rapport_events.base import utcnow
from rapport_events.codec import Envelope
from rapport_events.pagination import decode_cursor, encode_cursor
from rapport_events.types import (
    PartnerDataDisclosed,
    PartnerEventContributed,
)
from rapport_partner_share import security, slices, store
from rapport_partner_share.models import (
    ContributedEvent,
    ContributionAccepted,
    CustomerExport,
    Disclosure,
    DisclosurePublic,
    ErasureNoticeStatus,
    HashedIdentifiers,
    KnownCustomer,
    Match,
    NotificationPublic,
    OverlapReply,
    Partner,
    PartnerApiKey,
    PartnerConsent,
    PartnerCreate,
    PartnerCustomer,
    SegmentOverlap,
    SubjectDisclosure,
    SubjectLedger,
)
from rapport_partner_share.slices import as_utc

SOURCE = "/services/partner-share"
SERVICE = "partner-share"
CONTRIBUTION_MAX_FUTURE = timedelta(minutes=5)
CONTRIBUTION_MAX_AGE = timedelta(days=30)
# Ledger ids are 64-bit integers; only ASCII digits count ("²".isdigit() is true).
LEDGER_CURSOR = re.compile(r"[0-9]{1,19}")
LEDGER_ID_MAX = 2**63 - 1


class CustomerNotFound(LookupError):
    """Partner-share has not heard of a customer with that id."""


class PartnerNotFound(LookupError):
    """No partner (or no active partner) has that id."""


class ApiKeyNotFound(LookupError):
    """The partner has no key with that id."""


class UnknownRef(LookupError):
    """No consenting customer has this ref for this partner (or no customer at all)."""


class InvalidRequest(errors.InvalidRequest):
    """A request that parses but cannot be honoured (bad cursor, purpose, time)."""

    status_code = 400


async def get_known_customer(session: AsyncSession, customer_id: str) -> KnownCustomer:
    """One known customer, or CustomerNotFound."""
    customer = await store.get_known_customer(session, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


@dataclass(frozen=True)
class RegisteredPartner:
    partner: Partner
    key: PartnerApiKey
    api_key: str


async def register_partner(
    session: AsyncSession, data: PartnerCreate, *, default_rate: float, default_burst: int
) -> RegisteredPartner:
    """Register a partner with its first API key and webhook secret (both shown once)."""
    now = utcnow()
    partner = Partner(
        name=data.name,
        industry=data.industry,
        slices=list(data.slices),
        purposes=list(data.purposes),
        webhook_url=str(data.webhook_url) if data.webhook_url else None,
        webhook_secret=security.new_webhook_secret(),
        ref_key=security.new_ref_key(),
        rate_limit_per_second=data.rate_limit_per_second or default_rate,
        rate_limit_burst=data.rate_limit_burst or default_burst,
        created_at=now,
    )
    store.add(session, partner)
    await session.flush()
    key, api_key = _new_key(session, partner.id, now)
    return RegisteredPartner(partner=partner, key=key, api_key=api_key)


def _new_key(session: AsyncSession, partner_id: str, now: datetime) -> tuple[PartnerApiKey, str]:
    api_key = security.new_api_key()
    key = PartnerApiKey(
        partner_id=partner_id,
        key_hash=security.hash_api_key(api_key),
        hint=security.key_hint(api_key),
        created_at=now,
    )
    store.add(session, key)
    return key, api_key


async def list_partners(session: AsyncSession) -> list[tuple[Partner, list[PartnerApiKey]]]:
    """Active partners with their keys' metadata."""
    partners = await store.list_partners(session)
    keys = await store.list_api_keys(session, [partner.id for partner in partners])
    return [(partner, keys[partner.id]) for partner in partners]


async def get_partner(
    session: AsyncSession, partner_id: str, *, active: bool = True
) -> tuple[Partner, list[PartnerApiKey]]:
    """One partner with its keys' metadata, or PartnerNotFound."""
    partner = await store.get_partner(session, partner_id)
    if partner is None or (active and partner.deleted_at is not None):
        raise PartnerNotFound(partner_id)
    keys = await store.list_api_keys(session, [partner.id])
    return partner, keys[partner.id]


async def rotate_api_key(session: AsyncSession, partner_id: str) -> tuple[PartnerApiKey, str]:
    """Issue a new key and revoke every older one at once."""
    partner, _ = await get_partner(session, partner_id)
    now = utcnow()
    await store.revoke_api_keys(session, partner.id, now)
    key, api_key = _new_key(session, partner.id, now)
    await session.flush()
    return key, api_key


async def revoke_api_key(session: AsyncSession, partner_id: str, key_id: str) -> PartnerApiKey:
    """Revoke one key; it is refused from the next request on."""
    partner, _ = await get_partner(session, partner_id)
    key = await store.get_api_key(session, key_id)
    if key is None or key.partner_id != partner.id:
        raise ApiKeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        store.add(session, key)
    return key


async def delete_partner(session: AsyncSession, partner_id: str) -> None:
    """End a partnership: keys revoked, every slice shared with it deleted; the ledger stays."""
    partner, _ = await get_partner(session, partner_id)
    now = utcnow()
    partner.deleted_at = now
    store.add(session, partner)
    await store.revoke_api_keys(session, partner.id, now)
    await store.delete_slices(session, partner_id=partner.id)
    await store.delete_match_keys(session, partner_id=partner.id)
    await store.delete_consents(session, partner_id=partner.id)


async def authenticate(session: AsyncSession, api_key: str) -> Partner | None:
    """The active partner holding this unrevoked key, or None."""
    if not api_key or len(api_key) > 256:
        return None
    return await store.partner_by_key_hash(session, security.hash_api_key(api_key))


def resolve_purpose(partner: Partner, purpose: str | None) -> str:
    """The purpose a request is made for: one the partner is registered for."""
    if purpose is None:
        return partner.purposes[0]
    if purpose not in partner.purposes:
        raise InvalidRequest(f"purpose must be one of {', '.join(partner.purposes)}")
    return purpose


@dataclass(frozen=True)
class PartnerRequest:
    """Who asks, why, under which request id, and where disclosures are published."""

    partner: Partner
    purpose: str
    request_id: str
    topic: str
    ledger_key: str


async def _shown_slices(
    session: AsyncSession, partner: Partner, consent: PartnerConsent
) -> dict[str, dict[str, Any]]:
    # Consent ∩ registration is checked again on the way out, not only on the way in.
    allowed = set(consent.slices) & set(partner.slices) if consent.granted else set()
    rows = await store.slices_of(session, consent.customer_id, partner.id)
    return {row.slice: slices.view(row.slice, row.data) for row in rows if row.slice in allowed}


async def _disclose(
    session: AsyncSession,
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
    envelope = outbox.add(session, event, source=SOURCE, topic=request.topic)
    await store.append_disclosure(
        session,
        Disclosure(
            event_id=envelope.id,
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


async def _customer_reply(
    session: AsyncSession, request: PartnerRequest, consent: PartnerConsent
) -> PartnerCustomer:
    shown = await _shown_slices(session, request.partner, consent)
    await _disclose(session, request, consent, shown, slices.disclosed_fields(shown))
    return PartnerCustomer(ref=consent.ref, slices=shown, changed_at=consent.changed_at)


async def read_customer(
    session: AsyncSession, request: PartnerRequest, ref: str
) -> PartnerCustomer:
    """The consented slices of one customer, by the partner's ref; audited."""
    consent = await store.granted_consent_by_ref(session, request.partner.id, ref)
    if consent is None:
        raise UnknownRef(ref)
    return await _customer_reply(session, request, consent)


async def read_changes(
    session: AsyncSession,
    request: PartnerRequest,
    *,
    changed_since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[PartnerCustomer], str | None]:
    """Consenting customers whose shared data changed after `changed_since`; audited."""
    after = decode_cursor(cursor, datetime, str, refuse=InvalidRequest) if cursor else None
    since = as_utc(changed_since) if changed_since else None
    consents = await store.changed_consents(
        session, request.partner.id, since=since, after=after, limit=limit + 1
    )
    page, more = consents[:limit], len(consents) > limit
    customers = [await _customer_reply(session, request, consent) for consent in page]
    last = page[-1] if more else None
    return customers, encode_cursor(as_utc(last.changed_at), last.customer_id) if last else None


async def _matched_consents(
    session: AsyncSession, partner: Partner, identifiers: HashedIdentifiers
) -> dict[str, tuple[PartnerConsent, list[tuple[str, str]]]]:
    """Consents (with contact shared) behind the submitted hashes, by customer id."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind, digests in (("email", identifiers.emails), ("phone", identifiers.phones)):
        for key in await store.find_matches(session, partner.id, kind, digests):
            found.setdefault(key.customer_id, []).append((kind, key.digest))
    consents = await store.granted_consents(session, partner.id, found)
    return {
        consent.customer_id: (consent, found[consent.customer_id])
        for consent in consents
        if "contact" in consent.slices and "contact" in partner.slices
    }


async def match(
    session: AsyncSession, request: PartnerRequest, identifiers: HashedIdentifiers
) -> list[Match]:
    """Refs for the hashes of consenting customers; an unknown and a non-consenting
    customer look the same (absent). Each match is audited as a contact disclosure."""
    matched = await _matched_consents(session, request.partner, identifiers)
    matches: list[Match] = []
    for consent, keys in matched.values():
        kinds = sorted({kind for kind, _ in keys})
        await _disclose(
            session, request, consent, ["contact"], [f"contact.{k}_sha256" for k in kinds]
        )
        matches.extend(Match(kind=kind, hash=digest, ref=consent.ref) for kind, digest in keys)
    return sorted(matches, key=lambda m: (m.kind, m.hash, m.ref))


async def overlap(
    session: AsyncSession, partner: Partner, identifiers: HashedIdentifiers, k_threshold: int
) -> OverlapReply:
    """How many submitted hashes are consenting customers, and their segments; every count
    under k is withheld so no small group can be singled out."""
    matched = await _matched_consents(session, partner, identifiers)
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
        rows = await store.slices_of_many(
            session, partner.id, [c.customer_id for c in with_segments], "segments"
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
    session: AsyncSession, request: PartnerRequest, body: ContributedEvent
) -> ContributionAccepted:
    """Publish partner.event.contributed for a consenting customer; others look unknown."""
    consent = await store.granted_consent_by_ref(session, request.partner.id, body.ref)
    if consent is None:
        raise UnknownRef(body.ref)
    now = utcnow()
    occurred_at = as_utc(body.occurred_at) if body.occurred_at else now
    if occurred_at > now + CONTRIBUTION_MAX_FUTURE:
        raise InvalidRequest("occurred_at is in the future")
    if occurred_at < now - CONTRIBUTION_MAX_AGE:
        raise InvalidRequest(f"occurred_at is older than {CONTRIBUTION_MAX_AGE.days} days")
    envelope: Envelope = outbox.add(
        session,
        PartnerEventContributed(
            customer_id=consent.customer_id,
            partner_id=request.partner.id,
            name=body.name,
            properties=body.properties,
            occurred_at=occurred_at,
        ),
        source=SOURCE,
        topic=request.topic,
    )
    return ContributionAccepted(
        event_id=envelope.id, ref=body.ref, name=body.name, occurred_at=occurred_at
    )


async def list_disclosures(
    session: AsyncSession,
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
    rows = await store.list_disclosures(
        session,
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
    session: AsyncSession,
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
    rows = await store.disclosures_of_subject(
        session, subject, before_id=_ledger_cursor(cursor), limit=limit + 1
    )
    page = rows[:limit]
    sent = await store.erasure_notices(session, {(d.partner_id, d.partner_ref) for d in page})
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


def _row(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude=exclude)
    return dumped


async def export_customer(session: AsyncSession, customer_id: str) -> CustomerExport:
    """Everything held about one customer, from every table (empty lists when nothing)."""
    known = await store.get_known_customer(session, customer_id)
    disclosures, cursor = await list_disclosures(session, customer_id=customer_id, limit=1000)
    while cursor is not None:
        more, cursor = await list_disclosures(
            session, customer_id=customer_id, cursor=cursor, limit=1000
        )
        disclosures.extend(more)
    notifications = await store.list_notifications(session, customer_id=customer_id, limit=10_000)
    tombstone = await store.get_tombstone(session, customer_id)
    return CustomerExport(
        service=SERVICE,
        customer_id=customer_id,
        records={
            "known_customers": [_row(known)] if known else [],
            "consents": [
                _row(c, {"customer_id", "fill_token", "fill_attempts", "fill_next_at"})
                for c in await store.consents_of_customer(session, customer_id)
            ],
            "shared_slices": [
                _row(s, {"customer_id"}) for s in await store.slices_of(session, customer_id)
            ],
            "match_keys": [
                _row(k, {"customer_id"}) for k in await store.match_keys_of(session, customer_id)
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
