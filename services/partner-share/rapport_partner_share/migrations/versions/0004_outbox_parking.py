"""Parked outbox rows: `parked_at` and `park_reason`, and the pending index over both dates.

Revision ID: partner_share_0004_parking
Revises: partner_share_0003_bigint_ids
"""

from rapport_events.migrations import add_outbox_parking, drop_outbox_parking

revision = "partner_share_0004_parking"
down_revision = "partner_share_0003_bigint_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
