"""The access log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from rapport_events.columns import ROW_ID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_access_log",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("page", sa.String(64), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_access_log_operator", "console_access_log", ["operator"])
    op.create_index("ix_console_access_log_customer_id", "console_access_log", ["customer_id"])
    op.create_index("ix_console_access_log_viewed_at", "console_access_log", ["viewed_at"])


def downgrade() -> None:
    op.drop_table("console_access_log")
