"""Parked outbox rows: `parked_at` and `park_reason`, and the pending index over both dates.

Revision ID: profile_0005_outbox_parking
Revises: profile_0004_bigint_row_ids
"""

from rapport_events.migrations import add_outbox_parking, drop_outbox_parking

revision = "profile_0005_outbox_parking"
down_revision = "profile_0004_bigint_row_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_parking()


def downgrade() -> None:
    drop_outbox_parking()
