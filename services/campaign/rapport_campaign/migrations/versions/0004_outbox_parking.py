"""Parked outbox rows: `parked_at` and `park_reason`, and the pending index over both dates.

Revision ID: campaign_0004_outbox_parking
Revises: campaign_0003_bigint_row_ids
"""

from rapport_events.migrations import add_outbox_parking, drop_outbox_parking

revision = "campaign_0004_outbox_parking"
down_revision = "campaign_0003_bigint_row_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
