"""64-bit row ids: the outbox and the audit ledger.

Revision ID: partner_share_0003_bigint_ids
Revises: partner_share_0002_sharing
"""

from rapport_events.migrations import narrow_row_ids, widen_row_ids

revision = "partner_share_0003_bigint_ids"
down_revision = "partner_share_0002_sharing"
branch_labels = None
depends_on = None

# Referenced tables come before the tables that point at them.
ROW_IDS = {
    "outbox": ["id"],
    "partner_share_disclosures": ["id"],
    "partner_share_disclosure_subjects": ["disclosure_id"],
}


def upgrade() -> None:
    widen_row_ids(ROW_IDS)


def downgrade() -> None:
    narrow_row_ids(ROW_IDS)
