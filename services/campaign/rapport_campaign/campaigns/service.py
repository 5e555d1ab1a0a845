"""Broadcasts: create, launch, cancel; the scheduler's launches, A/B decisions and completions.

What broadcasts and journeys share (templates, offer codes, the order of sending) is here too."""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rapport_campaign.campaigns.models import Campaign as CampaignRow
from rapport_campaign.campaigns.models import CampaignCreate
from rapport_campaign.errors import Conflict, InvalidRequest, NotFound
from rapport_campaign.messaging import delivery
from rapport_campaign.shared import utc
from rapport_campaign.unit_of_work import CampaignUnitOfWork
from rapport_events.base import utcnow

# Unambiguous characters for offer codes (no 0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10


def new_offer_code(prefix: str | None) -> str | None:
    if not prefix:
        return None
    return f"{prefix.upper()}-{''.join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))}"


def send_rank(campaign_id: str, customer_id: str) -> str:
    # A stable shuffle: the same customer lands in the same variant on every replay.
    return hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).hexdigest()


def variant_pattern(variants: Sequence[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in variants for _ in range(int(v.get("weight", 1)))]


def check_templates(variants: list[dict[str, Any]]) -> None:
    for variant in variants:
        try:
            delivery.check_variant(variant)
        except delivery.TemplateProblem as problem:
            raise InvalidRequest(f"template error in variant {problem}") from problem


async def create_campaign(uow: CampaignUnitOfWork, data: CampaignCreate) -> CampaignRow:
    """Save a broadcast as a draft (or scheduled, when it has a time and is launched)."""
    variants = [v.model_dump() for v in data.variants]
    check_templates(variants)
    audience = data.audience
    if (
        audience.segment_id is not None
        and await uow.segments.get_segment(audience.segment_id) is None
    ):
        raise InvalidRequest(f"no segment {audience.segment_id}")
    campaign = CampaignRow(
        kind="broadcast",
        name=data.name,
        channel=data.channel,
        segment_id=audience.segment_id,
        customer_ids=list(dict.fromkeys(audience.customer_ids)) if audience.customer_ids else None,
        variants=variants,
        link=str(data.link) if data.link else None,
        offer_prefix=data.offer.prefix if data.offer else None,
        ab_test=data.ab_test.model_dump() if data.ab_test else None,
        frequency_cap=data.frequency_cap.model_dump() if data.frequency_cap else None,
        attribution_window_hours=data.attribution_window_hours,
        scheduled_at=utc(data.schedule_at) if data.schedule_at else None,
    )
    uow.campaigns.add(campaign)
    await uow.flush()
    return campaign


async def get_campaign(
    uow: CampaignUnitOfWork, campaign_id: str, kind: str | None = None
) -> CampaignRow:
    """The campaign (or journey, with `kind`), or NotFound."""
    campaign = await uow.campaigns.get_campaign(campaign_id)
    if campaign is None or (kind is not None and campaign.kind != kind):
        raise NotFound(f"no {'journey' if kind == 'journey' else 'campaign'} {campaign_id}")
    return campaign


async def list_campaigns(uow: CampaignUnitOfWork, kind: str) -> list[CampaignRow]:
    """The campaigns of this kind, oldest first."""
    return await uow.campaigns.list_campaigns(kind)


async def launch_campaign(
    uow: CampaignUnitOfWork, campaign_id: str, at: datetime | None
) -> CampaignRow:
    """Send now, or schedule for `at` (or the campaign's own schedule)."""
    campaign = await uow.campaigns.lock_campaign(campaign_id)
    if campaign is None or campaign.kind != "broadcast":
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status not in ("draft", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only a draft is launched")
    now = utcnow()
    when = utc(at) if at else (utc(campaign.scheduled_at) if campaign.scheduled_at else None)
    if when is not None and when > now:
        campaign.status = "scheduled"
        campaign.scheduled_at = when
        uow.campaigns.add(campaign)
        return campaign
    await start_sending(uow, campaign, now)
    return campaign


async def start_sending(uow: CampaignUnitOfWork, campaign: CampaignRow, now: datetime) -> int:
    """Create one message per recipient; returns how many were targeted."""
    if campaign.segment_id is not None:
        recipients = sorted(await uow.segments.member_ids(campaign.segment_id))
    else:
        resolved = [await uow.audience.resolve(cid) for cid in campaign.customer_ids or []]
        recipients = list(dict.fromkeys(cid for cid in resolved if cid is not None))
    recipients.sort(key=lambda cid: send_rank(campaign.id, cid))
    pattern = variant_pattern(campaign.variants)
    tested = len(recipients)
    if campaign.ab_test:
        fraction = float(campaign.ab_test["test_fraction"])
        tested = min(
            len(recipients), max(len(campaign.variants), round(len(recipients) * fraction))
        )
        campaign.decide_at = now + timedelta(
            minutes=float(campaign.ab_test["decide_after_minutes"])
        )
    rows: list[dict[str, Any]] = [
        {
            "id": secrets.token_hex(16),
            "campaign_id": campaign.id,
            "customer_id": customer_id,
            "channel": campaign.channel,
            "variant": pattern[index % len(pattern)] if index < tested else None,
            "status": "pending" if index < tested else "held",
            "offer_code": new_offer_code(campaign.offer_prefix),
            "context": {},
            "attempts": 0,
            "due_at": now,
            "created_at": now,
        }
        for index, customer_id in enumerate(recipients)
    ]
    await uow.messages.insert_messages(rows)
    campaign.status = "sending" if rows else "sent"
    campaign.launched_at = now
    if not rows:
        campaign.completed_at = now
    uow.campaigns.add(campaign)
    return len(rows)


async def cancel_campaign(uow: CampaignUnitOfWork, campaign_id: str) -> CampaignRow:
    """Stop a campaign: messages not yet sent are cancelled."""
    campaign = await uow.campaigns.lock_campaign(campaign_id)
    if campaign is None or campaign.kind != "broadcast":
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status in ("sent", "cancelled"):
        raise Conflict(f"campaign {campaign_id} is already {campaign.status}")
    await uow.messages.cancel_messages(campaign.id)
    campaign.status = "cancelled"
    campaign.completed_at = utcnow()
    uow.campaigns.add(campaign)
    return campaign


async def launch_due(uow: CampaignUnitOfWork, now: datetime) -> int:
    """Start the scheduled campaigns whose time has come."""
    started = 0
    for campaign in await uow.campaigns.due_campaigns(now):
        await start_sending(uow, campaign, now)
        started += 1
    return started


def best_variant(names: list[str], results: dict[str, tuple[int, int, int]]) -> str:
    """The variant with the best conversion rate, then click rate, then the first listed."""

    def score(name: str) -> tuple[float, float, int]:
        sent, clicked, converted = results.get(name, (0, 0, 0))
        return (
            converted / sent if sent else 0.0,
            clicked / sent if sent else 0.0,
            -names.index(name),
        )

    return max(names, key=score)


async def decide_winners(uow: CampaignUnitOfWork, now: datetime) -> int:
    """Pick the A/B winner by conversion rate (then click rate) and release the held messages."""
    decided = 0
    for campaign in await uow.campaigns.campaigns_to_decide(now):
        results = await uow.messages.variant_results(campaign.id)
        campaign.winner = best_variant(
            [v["name"] for v in campaign.variants],
            results,
        )
        await uow.messages.release_held_messages(campaign.id, campaign.winner, now)
        uow.campaigns.add(campaign)
        decided += 1
    return decided


async def complete_finished(uow: CampaignUnitOfWork, now: datetime) -> int:
    """Mark broadcasts whose every message reached an end state as sent."""
    completed = 0
    for campaign in await uow.campaigns.sending_campaigns():
        if await uow.messages.unfinished_messages(campaign.id) == 0:
            campaign.status = "sent"
            campaign.completed_at = now
            uow.campaigns.add(campaign)
            completed += 1
    return completed
