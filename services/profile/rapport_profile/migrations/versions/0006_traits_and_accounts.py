"""Custom traits on customers, and the accounts of Segment group calls.

Revision ID: profile_0006_traits_and_accounts
Revises: profile_0005_outbox_parking
"""

import sqlalchemy as sa
from alembic import op

revision = "profile_0006_traits_and_accounts"
down_revision = "profile_0005_outbox_parking"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("profile_customers") as table:
        table.add_column(sa.Column("traits", sa.JSON, nullable=False, server_default="{}"))
    op.create_table(
        "profile_accounts",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("traits", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "profile_account_members",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(255), primary_key=True),
        sa.Column("joined_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_profile_account_members_account_id", "profile_account_members", ["account_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_profile_account_members_account_id", "profile_account_members")
    op.drop_table("profile_account_members")
    op.drop_table("profile_accounts")
    with op.batch_alter_table("profile_customers") as table:
        table.drop_column("traits")
