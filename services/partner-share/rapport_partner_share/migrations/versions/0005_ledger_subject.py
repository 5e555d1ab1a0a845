"""The ledger's subject pseudonym: entries stay findable by a privacy officer after erasure.

Entries written before this revision have none (the ledger is append-only, so they are
not filled in); they stay linked to the customer through the subject table until erasure.

Revision ID: partner_share_0005_subject
Revises: partner_share_0004_parking
"""

import sqlalchemy as sa
from alembic import op

revision = "partner_share_0005_subject"
down_revision = "partner_share_0004_parking"
branch_labels = None
depends_on = None

LEDGER = "partner_share_disclosures"
INDEX = "ix_partner_share_disclosures_subject"


def upgrade() -> None:
    op.add_column(LEDGER, sa.Column("subject", sa.String(length=64), nullable=True))
    op.create_index(INDEX, LEDGER, ["subject"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=LEDGER)
    op.drop_column(LEDGER, "subject")
