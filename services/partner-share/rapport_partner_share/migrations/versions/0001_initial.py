"""Known customers, outbox and inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from rapport_events.migrations import create_event_tables, drop_event_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables()
    # No personal data here, by design: see rapport_partner_share.models.
    op.create_table(
        "partner_known_customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partner_known_customers")
    drop_event_tables()
