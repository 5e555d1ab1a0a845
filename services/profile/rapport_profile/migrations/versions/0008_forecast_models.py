"""The last fitted forecast models, so a process that starts answers from them at once.

Revision ID: profile_0008_forecast_models
Revises: profile_0007_customer_value
"""

import sqlalchemy as sa
from alembic import op

revision = "profile_0008_forecast_models"
down_revision = "profile_0007_customer_value"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_forecast_models",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("reply", sa.JSON(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("profile_forecast_models")
