"""What touches every domain at once: a merge of two customers, an erasure, the export.

Merges and erasures are rare and move many tables: they come one event at a time, on the ORM."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, update
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import shared
from rapport_campaign.audience import projection as audience_projection
from rapport_campaign.audience import store as audience_store
from rapport_campaign.audience.models import (
    Activity,
    ActivityItem,
    Alias,
    AudienceMember,
    ConsentState,
    ErasedCustomer,
)
from rapport_campaign.audience.service import resolve
from rapport_campaign.campaigns import store as campaign_store
from rapport_campaign.journeys.models import JourneyState
from rapport_campaign.messaging import store as messaging_store
from rapport_campaign.messaging.models import Message
from rapport_campaign.segments import service as segment_service
from rapport_campaign.segments import store as segment_store
from rapport_campaign.segments.models import SegmentMember
from rapport_campaign.segments.service import lock_segments
from rapport_campaign.settings import Settings
from rapport_campaign.shared import publish
from rapport_campaign.tracking.models import Click, Conversion, Unsubscribe
from rapport_events import outbox
from rapport_events.db import checkpoint_after_commit
from rapport_events.types import CustomerErased, CustomerMerged, SegmentExited


class CustomerExport(BaseModel):
    """Everything campaign holds about one customer."""

    service: str
    customer_id: str
    records: dict[str, list[dict[str, Any]]]


# Tables keyed by customer id, with the column that holds it.
CUSTOMER_TABLES: dict[str, type[SQLModel]] = {
    "campaign_audience": AudienceMember,
    "campaign_consents": ConsentState,
    "campaign_activity": Activity,
    "campaign_activity_items": ActivityItem,
    "campaign_segment_members": SegmentMember,
    "campaign_messages": Message,
    "campaign_clicks": Click,
    "campaign_conversions": Conversion,
    "campaign_journey_states": JourneyState,
    "campaign_unsubscribes": Unsubscribe,
    "campaign_aliases": Alias,
}


async def rows_of(session: AsyncSession, model: type[SQLModel], customer_id: str) -> list[Any]:
    column = model.__table__.c.customer_id  # type: ignore[attr-defined]
    result = await session.exec(select(model).where(column == customer_id))  # type: ignore[call-overload]
    return list(result.all())


async def delete_rows(session: AsyncSession, model: type[SQLModel], customer_id: str) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(delete(table).where(table.c.customer_id == customer_id))


async def update_rows(
    session: AsyncSession, model: type[SQLModel], of: str, values: dict[str, Any]
) -> None:
    """Set `values` on every row of the customer `of`."""
    table = model.__table__  # type: ignore[attr-defined]
    await session.exec(update(table).where(table.c.customer_id == of).values(**values))


async def export_customer(session: AsyncSession, customer_id: str) -> dict[str, list[Any]]:
    """Every row campaign holds about the customer, by table."""
    records: dict[str, list[Any]] = {}
    for table, model in CUSTOMER_TABLES.items():
        rows = await rows_of(session, model, customer_id)
        records[table] = [row.model_dump(mode="json") for row in rows]
    tombstone = await audience_store.get_erased_customer(session, customer_id)
    records["campaign_tombstones"] = [tombstone.model_dump(mode="json")] if tombstone else []
    return records


async def merge_customers(
    session: AsyncSession, event: CustomerMerged, settings: Settings
) -> tuple[str, str] | None:
    """Fold the merged customer's projection into the survivor; (merged, survivor) or None.

    The merged id's segment memberships exit; late events for it follow the alias.
    """
    survivor = await resolve(session, event.customer_id)
    merged = event.merged_customer_id
    if survivor is None or survivor == merged:
        return None
    if await audience_store.get_erased_customer(session, merged) is not None:
        return None
    alias = await audience_store.get_alias(session, merged)
    if alias is not None and alias.customer_id == survivor:
        return None  # applied before
    await lock_segments(session)
    for segment_id in sorted(await segment_store.memberships_of(session, merged)):
        segment = await segment_store.get_segment(session, segment_id)
        await segment_store.remove_members(session, segment_id, [merged])
        if segment is not None:
            publish(
                session,
                SegmentExited(customer_id=merged, segment_id=segment_id, segment_name=segment.name),
                settings,
            )
    for model in (ActivityItem, Activity):
        await update_rows(session, model, merged, {"customer_id": survivor})
    # Profile announces the survivor's consents after a merge (the most restrictive wins);
    # an unsubscribe click on either id still suppresses the survivor.
    for consent in await audience_store.consents_of(session, merged):
        if consent.suppressed_at is not None:
            own = await audience_store.get_consent(session, survivor, consent.channel)
            own = own or ConsentState(customer_id=survivor, channel=consent.channel, version=0)
            own.granted = False
            own.suppressed_at = own.suppressed_at or consent.suppressed_at
            session.add(own)
        await shared.delete_row(session, consent)
    merged_member = await audience_store.get_member(session, merged)
    survivor_member = await audience_store.get_member(session, survivor)
    if merged_member is not None:
        if survivor_member is None:
            data = merged_member.model_dump()
            data["customer_id"] = survivor
            await shared.delete_row(session, merged_member)
            await session.flush()
            survivor_member = AudienceMember(**data)
            audience_store.add_member(session, survivor_member)
        else:
            if survivor_member.acquisition_channel is None:
                survivor_member.acquisition_channel = merged_member.acquisition_channel
            await shared.delete_row(session, merged_member)
    await audience_store.repoint_aliases(session, merged, survivor)
    if alias is None:
        shared.add(session, Alias(merged_id=merged, customer_id=survivor))
    else:
        alias.customer_id = survivor
        session.add(alias)
    await session.flush()
    if survivor_member is not None:
        await audience_projection.refresh_metrics(session, survivor_member)
        await session.flush()
    return merged, survivor


async def erase_customer(session: AsyncSession, customer_id: str) -> list[str]:
    """Delete the projection of the customer and of ids merged into it; tombstone each id.

    Returns the ids erased now (none when erased before).
    """
    if await audience_store.get_erased_customer(session, customer_id) is not None:
        return []
    ids = [customer_id] + [alias.merged_id for alias in await rows_of(session, Alias, customer_id)]
    await lock_segments(session)
    for erased in ids:
        for model in (ActivityItem, Activity, ConsentState, AudienceMember, SegmentMember, Alias):
            await delete_rows(session, model, erased)
        await delete_rows(session, ErasedCustomer, erased)
        shared.add(session, ErasedCustomer(customer_id=erased))
    await session.flush()
    return ids


async def move_customer(session: AsyncSession, merged_id: str, survivor_id: str) -> None:
    """Messages, clicks, conversions and unsubscribes of a merged customer go to the survivor."""
    for model in (Message, Click, Conversion, Unsubscribe):
        await update_rows(session, model, merged_id, {"customer_id": survivor_id})
    await delete_rows(session, JourneyState, merged_id)


async def erase_marketing(session: AsyncSession, customer_ids: Sequence[str]) -> None:
    """Anonymise the customer's messages and touches, drop timers and unsubscribe records,
    take the ids off stored audience lists and purge the sent events about them."""
    erased = set(customer_ids)
    for campaign in await campaign_store.campaigns_listing(session, customer_ids):
        campaign.customer_ids = [cid for cid in campaign.customer_ids or [] if cid not in erased]
        session.add(campaign)
    await outbox.delete_sent(session, customer_ids)
    checkpoint_after_commit(session)
    for customer_id in customer_ids:
        await messaging_store.cancel_customer_messages(session, customer_id)
        await update_rows(
            session,
            Message,
            customer_id,
            {
                "customer_id": None,
                "address": None,
                "offer_code": None,
                "context": {},
                "redeemed_order_id": None,
            },
        )
        await update_rows(session, Click, customer_id, {"customer_id": None})
        await update_rows(
            session,
            Conversion,
            customer_id,
            {"customer_id": None, "order_id": None, "order_key": None},
        )
        await delete_rows(session, JourneyState, customer_id)
        await delete_rows(session, Unsubscribe, customer_id)


async def apply_merge(session: AsyncSession, event: CustomerMerged, settings: Settings) -> None:
    """The duplicate's rows move to the survivor, who is tested against every segment."""
    moved = await merge_customers(session, event, settings)
    if moved is None:
        return
    merged, survivor = moved
    await move_customer(session, merged, survivor)
    await segment_service.reevaluate(session, survivor, None, settings.kafka.topic)


async def apply_erasure(session: AsyncSession, event: CustomerErased) -> None:
    """Erasure: personal data goes, a tombstone stays so late events are dropped."""
    erased = await erase_customer(session, event.customer_id)
    await erase_marketing(session, erased)
