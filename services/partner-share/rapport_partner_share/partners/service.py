"""Partners and their keys: registration, rotation, revocation, the end of a partnership;
who a partner request comes from and for which purpose. Each runs in the caller's
transaction, on its unit of work."""

from dataclasses import dataclass
from datetime import datetime

from rapport_events.base import utcnow
from rapport_partner_share import security
from rapport_partner_share.errors import ApiKeyNotFound, InvalidRequest, PartnerNotFound
from rapport_partner_share.partners.models import Partner, PartnerApiKey, PartnerCreate
from rapport_partner_share.partners.store import PartnerStore
from rapport_partner_share.unit_of_work import PartnerShareUnitOfWork


@dataclass(frozen=True)
class RegisteredPartner:
    partner: Partner
    key: PartnerApiKey
    api_key: str


async def register_partner(
    uow: PartnerShareUnitOfWork, data: PartnerCreate, *, default_rate: float, default_burst: int
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
    uow.partners.add(partner)
    await uow.flush()
    key, api_key = _new_key(uow.partners, partner.id, now)
    return RegisteredPartner(partner=partner, key=key, api_key=api_key)


def _new_key(partners: PartnerStore, partner_id: str, now: datetime) -> tuple[PartnerApiKey, str]:
    api_key = security.new_api_key()
    key = PartnerApiKey(
        partner_id=partner_id,
        key_hash=security.hash_api_key(api_key),
        hint=security.key_hint(api_key),
        created_at=now,
    )
    partners.add(key)
    return key, api_key


async def list_partners(uow: PartnerShareUnitOfWork) -> list[tuple[Partner, list[PartnerApiKey]]]:
    """Active partners with their keys' metadata."""
    partners = await uow.partners.list_partners()
    keys = await uow.partners.list_api_keys([partner.id for partner in partners])
    return [(partner, keys[partner.id]) for partner in partners]


async def get_partner(
    uow: PartnerShareUnitOfWork, partner_id: str, *, active: bool = True
) -> tuple[Partner, list[PartnerApiKey]]:
    """One partner with its keys' metadata, or PartnerNotFound."""
    partner = await uow.partners.get_partner(partner_id)
    if partner is None or (active and partner.deleted_at is not None):
        raise PartnerNotFound(partner_id)
    keys = await uow.partners.list_api_keys([partner.id])
    return partner, keys[partner.id]


async def rotate_api_key(uow: PartnerShareUnitOfWork, partner_id: str) -> tuple[PartnerApiKey, str]:
    """Issue a new key and revoke every older one at once."""
    partner, _ = await get_partner(uow, partner_id)
    now = utcnow()
    await uow.partners.revoke_api_keys(partner.id, now)
    key, api_key = _new_key(uow.partners, partner.id, now)
    await uow.flush()
    return key, api_key


async def revoke_api_key(
    uow: PartnerShareUnitOfWork, partner_id: str, key_id: str
) -> PartnerApiKey:
    """Revoke one key; it is refused from the next request on."""
    partner, _ = await get_partner(uow, partner_id)
    key = await uow.partners.get_api_key(key_id)
    if key is None or key.partner_id != partner.id:
        raise ApiKeyNotFound(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        uow.partners.add(key)
    return key


async def delete_partner(uow: PartnerShareUnitOfWork, partner_id: str) -> None:
    """End a partnership: keys revoked, every slice shared with it deleted; the ledger stays."""
    partner, _ = await get_partner(uow, partner_id)
    now = utcnow()
    partner.deleted_at = now
    uow.partners.add(partner)
    await uow.partners.revoke_api_keys(partner.id, now)
    await uow.shares.delete_partner_shares(partner.id)


async def authenticate(uow: PartnerShareUnitOfWork, api_key: str) -> Partner | None:
    """The active partner holding this unrevoked key, or None."""
    if not api_key or len(api_key) > 256:
        return None
    return await uow.partners.partner_by_key_hash(security.hash_api_key(api_key))


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
