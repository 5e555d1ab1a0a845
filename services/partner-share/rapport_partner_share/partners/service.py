"""Partners and their keys: registration, rotation, revocation, the end of a partnership;
who a partner request comes from and for which purpose. Each runs in the caller's
transaction."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.base import utcnow
from rapport_partner_share import security
from rapport_partner_share.consents import store as consent_store
from rapport_partner_share.errors import ApiKeyNotFound, InvalidRequest, PartnerNotFound
from rapport_partner_share.partners import store
from rapport_partner_share.partners.models import Partner, PartnerApiKey, PartnerCreate
from rapport_partner_share.slices import store as slice_store


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
    await slice_store.delete_slices(session, partner_id=partner.id)
    await slice_store.delete_match_keys(session, partner_id=partner.id)
    await consent_store.delete_consents(session, partner_id=partner.id)


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
