"""The audit log by time, for its retention.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_console_audit_log_at", "console_audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_console_audit_log_at", "console_audit_log")
