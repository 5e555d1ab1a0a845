"""The customer 360: prefixed customers, identities, merges, consents, timeline,
orders and metrics, segments, disclosures, tracking de-duplication, erasures.

Revision ID: profile_0002_customer_360
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "profile_0002_customer_360"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    op.drop_index("ix_customers_email", table_name="customers")
    op.rename_table("customers", "profile_customers")
    with op.batch_alter_table("profile_customers") as table:
        table.alter_column("created_at", type_=TZ, existing_nullable=False)
        table.alter_column("updated_at", type_=TZ, existing_nullable=False)
        table.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="active")
        )
        table.add_column(sa.Column("merged_into", sa.String(64)))
        table.add_column(
            sa.Column("consent_version", sa.Integer, nullable=False, server_default="0")
        )
    op.create_index("ix_profile_customers_email", "profile_customers", ["email"], unique=True)

    op.create_table(
        "profile_idempotency_keys",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_profile_idempotency_keys_customer_id", "profile_idempotency_keys", ["customer_id"]
    )
    op.create_table(
        "profile_identities",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("acquisition_channel", sa.String(64)),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_profile_identities_customer_id", "profile_identities", ["customer_id"])
    op.create_table(
        "profile_merges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("merged_customer_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128)),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("merged_at", TZ, nullable=False),
        sa.Column("undone_at", TZ),
    )
    op.create_index("ix_profile_merges_customer_id", "profile_merges", ["customer_id"])
    op.create_index(
        "ix_profile_merges_merged_customer_id", "profile_merges", ["merged_customer_id"]
    )
    op.create_table(
        "profile_consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint(
            "customer_id", "purpose", "channel", "partner_id", name="uq_profile_consent"
        ),
    )
    op.create_index("ix_profile_consents_customer_id", "profile_consents", ["customer_id"])
    op.create_table(
        "profile_consent_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("text_version", sa.String(64)),
        sa.Column("actor", sa.String(128)),
        sa.Column("changed_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_profile_consent_history_customer_id", "profile_consent_history", ["customer_id"]
    )
    op.create_table(
        "profile_timeline",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_profile_timeline_customer", "profile_timeline", ["customer_id", "occurred_at", "id"]
    )
    op.create_index("ix_profile_timeline_subject_id", "profile_timeline", ["subject_id"])
    op.create_index("ix_profile_timeline_type", "profile_timeline", ["type"])
    op.create_table(
        "profile_orders",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("cost", MONEY),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
    )
    op.create_index("ix_profile_orders_customer_id", "profile_orders", ["customer_id"])
    op.create_index("ix_profile_orders_subject_id", "profile_orders", ["subject_id"])
    op.create_index("ix_profile_orders_occurred_at", "profile_orders", ["occurred_at"])
    op.create_table(
        "profile_customer_metrics",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("profit", MONEY, nullable=False),
        sa.Column("first_order_at", TZ),
        sa.Column("last_order_at", TZ),
        sa.Column("loyalty_points", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "profile_segment_members",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("segment_name", sa.String(200), nullable=False),
        sa.Column("entered_at", TZ, nullable=False),
    )
    op.create_table(
        "profile_disclosures",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("partner_name", sa.String(200)),
        sa.Column("partner_ref", sa.String(128), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("consent_version", sa.Integer),
        sa.Column("request_id", sa.String(128)),
        sa.Column("disclosed_at", TZ, nullable=False),
    )
    op.create_index("ix_profile_disclosures_customer_id", "profile_disclosures", ["customer_id"])
    op.create_table(
        "profile_tracked_messages",
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_profile_tracked_messages_customer_id", "profile_tracked_messages", ["customer_id"]
    )
    op.create_table(
        "profile_erasures",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("completed_at", TZ),
        sa.Column("services", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "profile_erasures",
        "profile_tracked_messages",
        "profile_disclosures",
        "profile_segment_members",
        "profile_customer_metrics",
        "profile_orders",
        "profile_timeline",
        "profile_consent_history",
        "profile_consents",
        "profile_merges",
        "profile_identities",
        "profile_idempotency_keys",
    ):
        op.drop_table(name)
    op.drop_index("ix_profile_customers_email", table_name="profile_customers")
    with op.batch_alter_table("profile_customers") as table:
        table.drop_column("consent_version")
        table.drop_column("merged_into")
        table.drop_column("status")
    op.rename_table("profile_customers", "customers")
    op.create_index("ix_customers_email", "customers", ["email"], unique=True)
