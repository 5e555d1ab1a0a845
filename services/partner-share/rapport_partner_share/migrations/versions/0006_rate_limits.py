"""Rate-limit allowances kept in the database, so every replica spends from the same one.

Revision ID: partner_share_0006_rate_limits
Revises: partner_share_0005_subject
"""

import sqlalchemy as sa
from alembic import op

revision = "partner_share_0006_rate_limits"
down_revision = "partner_share_0005_subject"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_share_rate_limits",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("tat", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partner_share_rate_limits")
