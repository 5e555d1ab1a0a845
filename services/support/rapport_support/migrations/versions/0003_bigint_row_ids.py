"""64-bit row ids: the outbox and consents, products, SLA breaches, reply attempts.

Revision ID: support_0003_bigint_row_ids
Revises: 0002_support_desk
"""

from rapport_events.migrations import narrow_row_ids, widen_row_ids

revision = "support_0003_bigint_row_ids"
down_revision = "0002_support_desk"
branch_labels = None
depends_on = None

# Referenced tables come before the tables that point at them.
ROW_IDS = {
    "outbox": ["id"],
    "support_consents": ["id"],
    "support_products": ["id"],
    "support_sla_breaches": ["id"],
    "support_reply_attempts": ["id"],
}


def upgrade() -> None:
    widen_row_ids(ROW_IDS)


def downgrade() -> None:
    narrow_row_ids(ROW_IDS)
