"""64-bit row ids: the outbox and the consent tables.

Revision ID: profile_0004_bigint_row_ids
Revises: profile_0003_erasure_subjects
"""

from rapport_events.migrations import narrow_row_ids, widen_row_ids

revision = "profile_0004_bigint_row_ids"
down_revision = "profile_0003_erasure_subjects"
branch_labels = None
depends_on = None

# Referenced tables come before the tables that point at them.
ROW_IDS = {
    "outbox": ["id"],
    "profile_consents": ["id"],
    "profile_consent_history": ["id"],
}


def upgrade() -> None:
    widen_row_ids(ROW_IDS)


def downgrade() -> None:
    narrow_row_ids(ROW_IDS)
