"""Every query of the partners domain: partners and their API keys.

The use cases ask them of a `PartnerStore` (`SqlPartnerStore` here, a fake in
`rapport_partner_share.testing`). The consents' projection reads the partners of a batch
at once on its session (`partners_by_id`).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.partners.models import Partner, PartnerApiKey


async def partners_by_id(session: AsyncSession, partner_ids: Iterable[str]) -> dict[str, Partner]:
    wanted = sorted(set(partner_ids))
    if not wanted:
        return {}
    rows = await session.exec(select(Partner).where(col(Partner.id).in_(wanted)))
    return {partner.id: partner for partner in rows.all()}


class PartnerStore(Protocol):
    def add(self, row: Partner | PartnerApiKey) -> None: ...

    async def get_partner(self, partner_id: str) -> Partner | None: ...

    async def list_partners(self) -> list[Partner]:
        """The active partners, oldest first."""
        ...

    async def list_api_keys(self, partner_ids: Sequence[str]) -> dict[str, list[PartnerApiKey]]:
        """Each partner's keys, oldest first (an empty list for a partner without any)."""
        ...

    async def get_api_key(self, key_id: str) -> PartnerApiKey | None: ...

    async def partner_by_key_hash(self, key_hash: str) -> Partner | None:
        """The active partner owning an unrevoked key with this hash."""
        ...

    async def revoke_api_keys(self, partner_id: str, now: datetime) -> None:
        """Revoke every key of the partner not revoked yet."""
        ...


class SqlPartnerStore(SqlStore):
    async def get_partner(self, partner_id: str) -> Partner | None:
        return await self.session.get(Partner, partner_id)

    async def list_partners(self) -> list[Partner]:
        query = (
            select(Partner)
            .where(col(Partner.deleted_at).is_(None))
            .order_by(col(Partner.created_at), col(Partner.id))
        )
        return list((await self.session.exec(query)).all())

    async def list_api_keys(self, partner_ids: Sequence[str]) -> dict[str, list[PartnerApiKey]]:
        rows = await self.session.exec(
            select(PartnerApiKey)
            .where(col(PartnerApiKey.partner_id).in_(partner_ids))
            .order_by(col(PartnerApiKey.created_at), col(PartnerApiKey.id))
        )
        keys: dict[str, list[PartnerApiKey]] = {partner_id: [] for partner_id in partner_ids}
        for key in rows.all():
            keys[key.partner_id].append(key)
        return keys

    async def get_api_key(self, key_id: str) -> PartnerApiKey | None:
        return await self.session.get(PartnerApiKey, key_id)

    async def partner_by_key_hash(self, key_hash: str) -> Partner | None:
        result = await self.session.exec(
            select(Partner)
            .join(PartnerApiKey, col(PartnerApiKey.partner_id) == col(Partner.id))
            .where(
                col(PartnerApiKey.key_hash) == key_hash,
                col(PartnerApiKey.revoked_at).is_(None),
                col(Partner.deleted_at).is_(None),
            )
        )
        return result.first()

    async def revoke_api_keys(self, partner_id: str, now: datetime) -> None:
        await self.session.exec(
            update(PartnerApiKey)
            .where(
                col(PartnerApiKey.partner_id) == partner_id, col(PartnerApiKey.revoked_at).is_(None)
            )
            .values(revoked_at=now)
        )
