"""Profile's customer value on support's customers: orders, revenue, lifetime value.

Revision ID: support_0005_customer_value
Revises: support_0004_outbox_parking
"""

import sqlalchemy as sa
from alembic import op

revision = "support_0005_customer_value"
down_revision = "support_0004_outbox_parking"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    with op.batch_alter_table("support_customers") as table:
        table.add_column(sa.Column("orders", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("revenue", MONEY, nullable=False, server_default="0"))
        table.add_column(sa.Column("lifetime_value", MONEY, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("support_customers") as table:
        table.drop_column("lifetime_value")
        table.drop_column("revenue")
        table.drop_column("orders")
