"""Lifetime value and tier stored with each customer's metrics (rapport_events.value).

Revision ID: profile_0007_customer_value
Revises: profile_0006_traits_and_accounts
"""

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from rapport_events import value

revision = "profile_0007_customer_value"
down_revision = "profile_0006_traits_and_accounts"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)


def _time(raw: object) -> datetime | None:
    # SQLite hands timestamps back as text.
    if raw is None:
        return None
    parsed = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def upgrade() -> None:
    with op.batch_alter_table("profile_customer_metrics") as table:
        table.add_column(sa.Column("lifetime_value", MONEY, nullable=False, server_default="0"))
        table.add_column(sa.Column("tier", sa.String(16), nullable=False, server_default="none"))
    op.create_index("ix_profile_customer_metrics_tier", "profile_customer_metrics", ["tier"])
    metrics = sa.table(
        "profile_customer_metrics",
        sa.column("customer_id", sa.String),
        sa.column("orders", sa.Integer),
        sa.column("profit", MONEY),
        sa.column("first_order_at", sa.DateTime(timezone=True)),
        sa.column("last_order_at", sa.DateTime(timezone=True)),
        sa.column("lifetime_value", MONEY),
        sa.column("tier", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT customer_id, orders, profit, first_order_at, last_order_at "
            "FROM profile_customer_metrics WHERE orders > 0"
        )
    ).all()
    for customer_id, orders, profit, first, last in rows:
        lifetime = value.lifetime_value(Decimal(str(profit)), _time(first), _time(last))
        connection.execute(
            metrics.update()
            .where(metrics.c.customer_id == customer_id)
            .values(lifetime_value=lifetime, tier=value.tier(orders, lifetime))
        )


def downgrade() -> None:
    op.drop_index("ix_profile_customer_metrics_tier", "profile_customer_metrics")
    with op.batch_alter_table("profile_customer_metrics") as table:
        table.drop_column("tier")
        table.drop_column("lifetime_value")
