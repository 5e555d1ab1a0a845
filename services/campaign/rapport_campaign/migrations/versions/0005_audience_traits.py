"""Profile's custom traits on the audience, for `trait` segment rules.

Revision ID: campaign_0005_audience_traits
Revises: campaign_0004_outbox_parking
"""

import sqlalchemy as sa
from alembic import op

revision = "campaign_0005_audience_traits"
down_revision = "campaign_0004_outbox_parking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_audience") as table:
        table.add_column(sa.Column("traits", sa.JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("campaign_audience") as table:
        table.drop_column("traits")
