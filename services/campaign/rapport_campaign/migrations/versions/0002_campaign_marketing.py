"""Customer metrics and behaviour, consents, segments, campaigns, journeys, tracking.

Revision ID: 0002_campaign_marketing
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_campaign_marketing"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    with op.batch_alter_table("campaign_audience") as batch:
        batch.alter_column("country", type_=sa.String(64), existing_type=sa.String(2))
        batch.add_column(sa.Column("phone", sa.String(32)))
        batch.add_column(sa.Column("birth_date", sa.Date))
        batch.add_column(sa.Column("gender", sa.String(32)))
        batch.add_column(sa.Column("income_band", sa.String(32)))
        batch.add_column(sa.Column("education", sa.String(64)))
        batch.add_column(sa.Column("city", sa.String(100)))
        batch.add_column(sa.Column("social_handles", sa.JSON))
        batch.add_column(sa.Column("orders", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("revenue", MONEY, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("average_order_value", MONEY, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lifetime_value", MONEY, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tier", sa.String(16), nullable=False, server_default="none"))
        batch.add_column(sa.Column("first_order_at", TZ))
        batch.add_column(sa.Column("last_order_at", TZ))
        batch.add_column(sa.Column("last_active_at", TZ))
        batch.add_column(
            sa.Column("loyalty_points", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("nps", sa.Integer))
        batch.add_column(
            sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.current_timestamp())
        )
    op.create_index("ix_campaign_audience_channel", "campaign_audience", ["acquisition_channel"])

    op.create_table(
        "campaign_activity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(128)),
        sa.Column("kind", sa.String(64)),
        sa.Column("name", sa.String(256)),
        sa.Column("url", sa.String(2048)),
        sa.Column("search_query", sa.String(512)),
        sa.Column("coupon", sa.String(128)),
        sa.Column("channel", sa.String(128)),
        sa.Column("value", MONEY),
        sa.Column("currency", sa.String(8)),
        sa.Column("balance", sa.Integer),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("properties", sa.JSON),
    )
    op.create_index(
        "ix_campaign_activity_customer",
        "campaign_activity",
        ["customer_id", "event_type", "occurred_at"],
    )
    op.create_table(
        "campaign_activity_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "activity_id",
            sa.Integer,
            sa.ForeignKey("campaign_activity.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(128), nullable=False),
        sa.Column("product_model", sa.String(128)),
        sa.Column("name", sa.String(256)),
        sa.Column("category", sa.String(128)),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_campaign_activity_items_activity_id", "campaign_activity_items", ["activity_id"]
    )
    op.create_index(
        "ix_campaign_activity_items_customer_id", "campaign_activity_items", ["customer_id"]
    )
    op.create_index("ix_campaign_activity_items_product", "campaign_activity_items", ["product_id"])

    op.create_table(
        "campaign_consents",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("suppressed_at", TZ),
    )
    op.create_table(
        "campaign_tombstones",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("erased_at", TZ, nullable=False),
    )
    op.create_table(
        "campaign_aliases",
        sa.Column("merged_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("merged_at", TZ, nullable=False),
    )
    op.create_index("ix_campaign_aliases_customer_id", "campaign_aliases", ["customer_id"])

    op.create_table(
        "campaign_segments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000)),
        sa.Column("rule", sa.JSON, nullable=False),
        sa.Column("relevance", sa.JSON, nullable=False),
        sa.Column("depends_on", sa.JSON, nullable=False),
        sa.Column("time_dependent", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("refreshed_at", TZ),
    )
    op.create_table(
        "campaign_segment_members",
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("entered_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_campaign_segment_members_customer", "campaign_segment_members", ["customer_id"]
    )

    op.create_table(
        "campaign_campaigns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("segment_id", sa.String(64)),
        sa.Column("customer_ids", sa.JSON),
        sa.Column("trigger", sa.String(32)),
        sa.Column("trigger_config", sa.JSON),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("link", sa.String(2048)),
        sa.Column("offer_prefix", sa.String(32)),
        sa.Column("ab_test", sa.JSON),
        sa.Column("winner", sa.String(64)),
        sa.Column("frequency_cap", sa.JSON),
        sa.Column("attribution_window_hours", sa.Float),
        sa.Column("scheduled_at", TZ),
        sa.Column("launched_at", TZ),
        sa.Column("decide_at", TZ),
        sa.Column("completed_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_campaign_campaigns_segment_id", "campaign_campaigns", ["segment_id"])

    op.create_table(
        "campaign_messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("offer_code", sa.String(64), unique=True),
        sa.Column("address", sa.String(320)),
        sa.Column("context", sa.JSON),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
        sa.Column("delivered_at", TZ),
        sa.Column("opened_at", TZ),
        sa.Column("clicked_at", TZ),
        sa.Column("redeemed_at", TZ),
        sa.Column("redeemed_order_id", sa.String(128)),
    )
    op.create_index("ix_campaign_messages_campaign_id", "campaign_messages", ["campaign_id"])
    op.create_index("ix_campaign_messages_due", "campaign_messages", ["status", "due_at"])
    op.create_index(
        "ix_campaign_messages_customer", "campaign_messages", ["customer_id", "channel", "sent_at"]
    )

    op.create_table(
        "campaign_clicks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("clicked_at", TZ, nullable=False),
    )
    op.create_index("ix_campaign_clicks_message_id", "campaign_clicks", ["message_id"])
    op.create_index("ix_campaign_clicks_customer", "campaign_clicks", ["customer_id", "clicked_at"])

    op.create_table(
        "campaign_conversions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_key", sa.String(200), unique=True),
        sa.Column("order_id", sa.String(128)),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("variant", sa.String(64)),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("touch", sa.String(16), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
    )
    op.create_index("ix_campaign_conversions_message_id", "campaign_conversions", ["message_id"])
    op.create_index("ix_campaign_conversions_campaign_id", "campaign_conversions", ["campaign_id"])
    op.create_index("ix_campaign_conversions_customer_id", "campaign_conversions", ["customer_id"])

    op.create_table(
        "campaign_journey_states",
        sa.Column("journey_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("fired_cycle", sa.Integer, nullable=False),
        sa.Column("due_at", TZ),
        sa.Column("context", sa.JSON),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_campaign_journey_states_due", "campaign_journey_states", ["due_at"])

    op.create_table(
        "campaign_unsubscribes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(64)),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("synced_at", TZ),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_index(
        "ix_campaign_unsubscribes_customer_id", "campaign_unsubscribes", ["customer_id"]
    )


def downgrade() -> None:
    for table in (
        "campaign_unsubscribes",
        "campaign_journey_states",
        "campaign_conversions",
        "campaign_clicks",
        "campaign_messages",
        "campaign_campaigns",
        "campaign_segment_members",
        "campaign_segments",
        "campaign_aliases",
        "campaign_tombstones",
        "campaign_consents",
        "campaign_activity_items",
        "campaign_activity",
    ):
        op.drop_table(table)
    op.drop_index("ix_campaign_audience_channel", table_name="campaign_audience")
    with op.batch_alter_table("campaign_audience") as batch:
        for column in (
            "updated_at", "nps", "loyalty_points", "last_active_at", "last_order_at",
            "first_order_at", "tier", "lifetime_value", "average_order_value", "revenue",
            "orders", "social_handles", "city", "education", "income_band", "gender",
            "birth_date", "phone",
        ):  # fmt: skip
            batch.drop_column(column)
        batch.alter_column("country", type_=sa.String(2), existing_type=sa.String(64))
