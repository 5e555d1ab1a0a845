"""Every query on consents and their history."""

from collections.abc import Collection

from sqlalchemy import (
    delete,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_profile.consents.models import Consent, ConsentChange
from rapport_profile.shared import _chunks


async def consents_of(session: AsyncSession, customer_id: str) -> list[Consent]:
    result = await session.exec(
        select(Consent)
        .where(Consent.customer_id == customer_id)
        .order_by(col(Consent.purpose), col(Consent.channel), col(Consent.partner_id))
    )
    return list(result.all())


async def consents_among(
    session: AsyncSession, customer_ids: Collection[str], purpose: str
) -> list[Consent]:
    """The consents for `purpose` of any of these customers."""
    found: list[Consent] = []
    for chunk in _chunks(customer_ids):
        result = await session.exec(
            select(Consent).where(col(Consent.customer_id).in_(chunk), Consent.purpose == purpose)
        )
        found.extend(result.all())
    return found


async def get_consent(
    session: AsyncSession, customer_id: str, purpose: str, channel: str, partner_id: str
) -> Consent | None:
    result = await session.exec(
        select(Consent).where(
            Consent.customer_id == customer_id,
            Consent.purpose == purpose,
            Consent.channel == channel,
            Consent.partner_id == partner_id,
        )
    )
    return result.first()


async def consent_history(session: AsyncSession, customer_id: str) -> list[ConsentChange]:
    result = await session.exec(
        select(ConsentChange)
        .where(ConsentChange.customer_id == customer_id)
        .order_by(col(ConsentChange.version), col(ConsentChange.id))
    )
    return list(result.all())


async def delete_consents(session: AsyncSession, customer_id: str) -> None:
    await session.exec(delete(Consent).where(col(Consent.customer_id) == customer_id))
