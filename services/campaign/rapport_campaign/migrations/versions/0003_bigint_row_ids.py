"""64-bit row ids: the outbox and activity, clicks, conversions, unsubscribes.

Revision ID: campaign_0003_bigint_row_ids
Revises: 0002_campaign_marketing
"""

from rapport_events.migrations import narrow_row_ids, widen_row_ids

revision = "campaign_0003_bigint_row_ids"
down_revision = "0002_campaign_marketing"
branch_labels = None
depends_on = None

# Referenced tables come before the tables that point at them.
ROW_IDS = {
    "outbox": ["id"],
    "campaign_activity": ["id"],
    "campaign_activity_items": ["id", "activity_id"],
    "campaign_clicks": ["id"],
    "campaign_conversions": ["id"],
    "campaign_unsubscribes": ["id"],
}


def upgrade() -> None:
    widen_row_ids(ROW_IDS)


def downgrade() -> None:
    narrow_row_ids(ROW_IDS)
