"""Erasures remember every id erased with them, to purge the outbox of each.

Revision ID: profile_0003_erasure_subjects
Revises: profile_0002_customer_360
"""

import sqlalchemy as sa
from alembic import op

revision = "profile_0003_erasure_subjects"
down_revision = "profile_0002_customer_360"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profile_erasures") as table:
        table.add_column(sa.Column("subjects", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("profile_erasures") as table:
        table.drop_column("subjects")
