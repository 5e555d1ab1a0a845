"""The audit log of operators' privileged actions.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from rapport_events.columns import ROW_ID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_audit_log",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_audit_log_operator", "console_audit_log", ["operator"])
    op.create_index("ix_console_audit_log_action", "console_audit_log", ["action"])


def downgrade() -> None:
    op.drop_table("console_audit_log")
