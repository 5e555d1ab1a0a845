"""What touches every domain at once: a merge of two customers, an erasure, the export, on
the unit of work (`CampaignUnitOfWork`).

Merges and erasures are rare and move many tables: they come one event at a time, and
their handlers build the SQL unit of work on the consumer's session; each domain's store
moves or deletes a customer's rows one statement a table."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign.audience.models import Alias, AudienceMember, ConsentState
from rapport_campaign.settings import Settings
from rapport_campaign.unit_of_work import CampaignUnitOfWork, SqlCampaignUnitOfWork
from rapport_events.types import CustomerErased, CustomerMerged, SegmentExited


class CustomerExport(BaseModel):
    """Everything campaign holds about one customer."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# --- export --------------------------------------------------------------------------------------


async def export_rows(uow: CampaignUnitOfWork, customer_id: str) -> dict[str, list[SQLModel]]:
    """Every row campaign holds about the customer, by table."""
    member = await uow.audience.get_member(customer_id)
    tombstone = await uow.audience.get_erased_customer(customer_id)
    return {
        "campaign_audience": [member] if member is not None else [],
        "campaign_consents": list(await uow.audience.consents_of(customer_id)),
        "campaign_activity": list(await uow.audience.activities_of(customer_id)),
        "campaign_activity_items": list(await uow.audience.activity_items_of(customer_id)),
        "campaign_segment_members": list(await uow.segments.members_of_customer(customer_id)),
        "campaign_messages": list(await uow.messages.messages_of(customer_id)),
        "campaign_clicks": list(await uow.tracking.clicks_of(customer_id)),
        "campaign_conversions": list(await uow.tracking.conversions_of(customer_id)),
        "campaign_journey_states": list(await uow.journeys.journey_states_of(customer_id)),
        "campaign_unsubscribes": list(await uow.tracking.unsubscribes_of(customer_id)),
        "campaign_aliases": list(await uow.audience.aliases_of(customer_id)),
        "campaign_tombstones": [tombstone] if tombstone is not None else [],
    }


async def export_customer(uow: CampaignUnitOfWork, customer_id: str) -> dict[str, list[Any]]:
    """Every row campaign holds about the customer, by table, as JSON values."""
    rows = await export_rows(uow, customer_id)
    return {table: [row.model_dump(mode="json") for row in found] for table, found in rows.items()}


# --- merge ---------------------------------------------------------------------------------------


async def merge_customers(uow: CampaignUnitOfWork, event: CustomerMerged) -> tuple[str, str] | None:
    """Fold the merged customer's projection into the survivor; (merged, survivor) or None.

    The merged id's segment memberships exit; late events for it follow the alias.
    """
    survivor = await uow.audience.resolve(event.customer_id)
    merged = event.merged_customer_id
    if survivor is None or survivor == merged:
        return None
    if await uow.audience.get_erased_customer(merged) is not None:
        return None
    alias = await uow.audience.get_alias(merged)
    if alias is not None and alias.customer_id == survivor:
        return None  # applied before
    await _exit_segments(uow, merged)
    await uow.audience.move_activity(merged, survivor)
    await _fold_consents(uow, merged, survivor)
    survivor_member = await _fold_member(uow, merged, survivor)
    await uow.audience.repoint_aliases(merged, survivor)
    if alias is None:
        uow.audience.add(Alias(merged_id=merged, customer_id=survivor))
    else:
        alias.customer_id = survivor
        uow.audience.add(alias)
    await uow.flush()
    if survivor_member is not None:
        await uow.audience.refresh_metrics(survivor_member)
        await uow.flush()
    return merged, survivor


async def _exit_segments(uow: CampaignUnitOfWork, merged: str) -> None:
    """The merged id leaves each of its segments, and each exit is published."""
    await uow.segments.lock_segments()
    exits: list[SegmentExited] = []
    for segment_id in sorted(await uow.segments.memberships_of(merged)):
        segment = await uow.segments.get_segment(segment_id)
        await uow.segments.remove_members(segment_id, [merged])
        if segment is not None:
            exits.append(
                SegmentExited(customer_id=merged, segment_id=segment_id, segment_name=segment.name)
            )
    await uow.outbox.publish(exits)


async def _fold_consents(uow: CampaignUnitOfWork, merged: str, survivor: str) -> None:
    # Profile announces the survivor's consents after a merge (the most restrictive wins);
    # an unsubscribe click on either id still suppresses the survivor.
    for consent in await uow.audience.consents_of(merged):
        if consent.suppressed_at is not None:
            own = await uow.audience.get_consent(survivor, consent.channel)
            own = own or ConsentState(customer_id=survivor, channel=consent.channel, version=0)
            own.granted = False
            own.suppressed_at = own.suppressed_at or consent.suppressed_at
            uow.audience.add(own)
        await uow.audience.delete(consent)


async def _fold_member(
    uow: CampaignUnitOfWork, merged: str, survivor: str
) -> AudienceMember | None:
    """The survivor's audience row after the merge: the merged one's, re-keyed, when the
    survivor has none yet."""
    merged_member = await uow.audience.get_member(merged)
    survivor_member = await uow.audience.get_member(survivor)
    if merged_member is None:
        return survivor_member
    if survivor_member is not None:
        if survivor_member.acquisition_channel is None:
            survivor_member.acquisition_channel = merged_member.acquisition_channel
        await uow.audience.delete(merged_member)
        return survivor_member
    data = merged_member.model_dump()
    data["customer_id"] = survivor
    await uow.audience.delete(merged_member)
    # The old key's row goes before the new one is written.
    await uow.flush()
    survivor_member = AudienceMember(**data)
    uow.audience.add(survivor_member)
    return survivor_member


async def move_customer(uow: CampaignUnitOfWork, merged_id: str, survivor_id: str) -> None:
    """Messages, clicks, conversions and unsubscribes of a merged customer go to the survivor."""
    await uow.messages.move_messages(merged_id, survivor_id)
    await uow.tracking.move_tracking(merged_id, survivor_id)
    await uow.journeys.forget_journey_states(merged_id)


async def merge(uow: CampaignUnitOfWork, event: CustomerMerged) -> None:
    """The duplicate's rows move to the survivor, who is tested against every segment."""
    moved = await merge_customers(uow, event)
    if moved is None:
        return
    merged, survivor = moved
    await move_customer(uow, merged, survivor)
    await uow.membership.reevaluate(survivor, None)


async def apply_merge(session: AsyncSession, event: CustomerMerged, settings: Settings) -> None:
    """A merge from the log, in the consumer's transaction."""
    await merge(SqlCampaignUnitOfWork(session, settings.kafka.topic), event)


# --- erasure -------------------------------------------------------------------------------------


async def erase_customer(uow: CampaignUnitOfWork, customer_id: str) -> list[str]:
    """Delete the projection of the customer and of ids merged into it; tombstone each id.

    Returns the ids erased now (none when erased before).
    """
    if await uow.audience.get_erased_customer(customer_id) is not None:
        return []
    aliases = await uow.audience.aliases_of(customer_id)
    ids = [customer_id] + [alias.merged_id for alias in aliases]
    await uow.segments.lock_segments()
    for erased in ids:
        await uow.audience.forget_customer(erased)
        await uow.segments.forget_memberships(erased)
        await uow.audience.tombstone(erased)
    await uow.flush()
    return ids


async def erase_marketing(uow: CampaignUnitOfWork, customer_ids: Sequence[str]) -> None:
    """Anonymise the customer's messages and touches, drop timers and unsubscribe records,
    take the ids off stored audience lists and purge the sent events about them."""
    erased = set(customer_ids)
    for campaign in await uow.campaigns.campaigns_listing(customer_ids):
        campaign.customer_ids = [cid for cid in campaign.customer_ids or [] if cid not in erased]
        uow.campaigns.add(campaign)
    await uow.outbox.forget_sent(customer_ids)
    for customer_id in customer_ids:
        await uow.messages.cancel_customer_messages(customer_id)
        await uow.messages.anonymise_messages(customer_id)
        await uow.tracking.anonymise_tracking(customer_id)
        await uow.journeys.forget_journey_states(customer_id)


async def erase(uow: CampaignUnitOfWork, event: CustomerErased) -> None:
    """Erasure: personal data goes, a tombstone stays so late events are dropped."""
    erased = await erase_customer(uow, event.customer_id)
    await erase_marketing(uow, erased)


async def apply_erasure(session: AsyncSession, event: CustomerErased) -> None:
    """An erasure from the log, in the consumer's transaction."""
    await erase(SqlCampaignUnitOfWork(session), event)
