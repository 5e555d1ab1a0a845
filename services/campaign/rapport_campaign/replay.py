"""Rebuild campaign's projection from the log: `python -m rapport_campaign.replay build|swap`.

Rebuilt from the log: the audience and its metrics, behaviour (activity and line items),
marketing consents, aliases of merged customers, erasure tombstones, and segment
memberships (computed by the same handlers from the segment rules, which are kept).

Kept as they are, copied from the live database: segments, campaigns and journeys,
messages, clicks, conversions, journey timers (they record what was sent: rebuilt, every
due journey would fire again) and unsubscribe clicks. Segments guard the build: a segment
created or deleted during it computed its members from the old audience, so the swap
refuses. Unsubscribe clicks suppress a channel at once, before profile records the
revocation on the log: the swap applies them to the rebuilt consents again.
"""

import sys
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from rapport_campaign.audience import store as audience_store
from rapport_campaign.audience.models import ConsentState
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_campaign.settings import get_settings
from rapport_campaign.shared import utc
from rapport_campaign.tracking.models import Unsubscribe
from rapport_events import bulk
from rapport_events.replay import ReplayPlan, command

CONSENTS = ConsentState.__table__  # type: ignore[attr-defined]
UNSUBSCRIBES = Unsubscribe.__table__  # type: ignore[attr-defined]


async def reapply_unsubscribes(connection: AsyncConnection) -> None:
    """A channel unsubscribed by link stays suppressed unless a grant came after the click."""
    clicks = (await connection.execute(select(UNSUBSCRIBES))).all()
    if not clicks:
        return
    keys = {(click.customer_id, click.channel) for click in clicks}
    found = await connection.execute(
        select(CONSENTS).where(CONSENTS.c.customer_id.in_({key[0] for key in keys}))
    )
    consents = {(row.customer_id, row.channel): dict(row._mapping) for row in found}
    suppressed: dict[tuple[str, str], dict[str, object]] = {}
    for click in sorted(clicks, key=lambda click: utc(click.requested_at)):
        key = (click.customer_id, click.channel)
        consent = consents.get(key) or {
            "customer_id": click.customer_id,
            "channel": click.channel,
            "granted": False,
            "version": 0,
            "updated_at": utc(click.requested_at),
        }
        granted_after = consent["granted"] and utc(consent["updated_at"]) > utc(click.requested_at)
        if granted_after:
            continue
        consent.update(
            granted=False, suppressed_at=utc(click.requested_at), source="unsubscribe_link"
        )
        consents[key] = suppressed[key] = consent
    await _upsert(connection, list(suppressed.values()))


async def _upsert(connection: AsyncConnection, rows: Sequence[dict[str, object]]) -> None:
    """Replace the consents of these (customer, channel) keys with `rows`."""
    for part in bulk.chunks(rows):
        keys = [(row["customer_id"], row["channel"]) for row in part]
        key = tuple_(CONSENTS.c.customer_id, CONSENTS.c.channel)
        await connection.execute(delete(CONSENTS).where(key.in_(keys)))
        await connection.execute(insert(CONSENTS), list(part))


PLAN = ReplayPlan(
    service="campaign",
    handlers=HANDLERS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    rebuilds=(
        audience_store.AUDIENCE.name,
        audience_store.ACTIVITY.name,
        audience_store.ITEMS.name,
        "campaign_consents",
        "campaign_aliases",
        "campaign_tombstones",
        "campaign_segment_members",
    ),
    keeps=(
        "campaign_segments",
        "campaign_campaigns",
        "campaign_messages",
        "campaign_clicks",
        "campaign_conversions",
        "campaign_journey_states",
        "campaign_unsubscribes",
    ),
    guards=("campaign_segments",),
    reconcile=reapply_unsubscribes,
)

run = command(PLAN, get_settings)


if __name__ == "__main__":
    sys.exit(run())
