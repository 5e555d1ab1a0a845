"""The audience's use cases: who a customer id is now, and what they consented to.

`resolve` and `resolve_all` take the session: the projection and merges resolve a run of
events at once. Reading a member and suppressing a channel take the unit of work."""

import functools
from collections.abc import Iterable

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience import store
from rapport_campaign.audience.models import AudienceMember, ConsentState
from rapport_campaign.errors import NotFound
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events import customer_ids as customer_ids_kit
from rapport_events.base import utcnow


async def resolve(session: AsyncSession, customer_id: str) -> str | None:
    """The id that owns `customer_id` now, through merges; None if erased."""
    return (await resolve_all(session, [customer_id]))[customer_id]


async def resolve_all(session: AsyncSession, customer_ids: Iterable[str]) -> dict[str, str | None]:
    """`resolve` for many ids at once: one alias query per merge level, one for tombstones."""
    return await customer_ids_kit.resolve_all(
        customer_ids,
        functools.partial(store.aliases, session),
        functools.partial(store.erased_among, session),
    )


def consented(consent: ConsentState | None) -> bool:
    """Marketing on this channel is allowed: granted, and not unsubscribed since."""
    return consent is not None and consent.granted and consent.suppressed_at is None


async def suppress_channel(uow: CampaignUnitOfWork, customer_id: str, channel: str) -> bool:
    """Stop marketing on a channel at once (an unsubscribe); False when it already was."""
    consent = await uow.audience.get_consent(customer_id, channel)
    if consent is None:
        consent = ConsentState(customer_id=customer_id, channel=channel, version=0)
    already = consent.suppressed_at is not None and not consent.granted
    consent.granted = False
    consent.suppressed_at = consent.suppressed_at or utcnow()
    consent.source = "unsubscribe_link"
    uow.audience.add(consent)
    await uow.flush()
    return not already


async def get_member(uow: CampaignUnitOfWork, customer_id: str) -> tuple[AudienceMember, list[str]]:
    """One audience member and the segments they are in, or NotFound."""
    member = await uow.audience.get_member(customer_id)
    if member is None:
        raise NotFound(f"no audience member {customer_id}")
    return member, sorted(await uow.segments.memberships_of(customer_id))
