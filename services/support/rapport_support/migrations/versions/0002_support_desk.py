"""Support desk: customer projection (consents, handles, merges, erasures), products owned,
tickets with comments, links and SLA, social mentions with replies.

Revision ID: 0002_support_desk
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_support_desk"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("support_customers") as batch:
        # International numbers arrive formatted ("+44 20 7946 0958") from other producers.
        batch.alter_column("phone", type_=sa.String(64), existing_type=sa.String(16))
        batch.add_column(sa.Column("country", sa.String(64)))
        batch.add_column(sa.Column("city", sa.String(128)))
        batch.add_column(sa.Column("tier", sa.String(32)))
        batch.add_column(sa.Column("updated_at", TZ))

    op.create_table(
        "support_consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False, server_default=""),
        sa.Column("channel", sa.String(16)),
        sa.Column("partner_id", sa.String(128)),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(128)),
        sa.Column("changed_at", TZ, nullable=False),
        sa.UniqueConstraint("customer_id", "purpose", "scope"),
    )
    op.create_index("ix_support_consents_customer_id", "support_consents", ["customer_id"])

    op.create_table(
        "support_handles",
        sa.Column("platform", sa.String(64), primary_key=True),
        sa.Column("handle_key", sa.String(256), primary_key=True),
        sa.Column("handle", sa.String(256), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_support_handles_customer_id", "support_handles", ["customer_id"])

    op.create_table(
        "support_merged_customers",
        sa.Column("merged_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("merged_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_support_merged_customers_customer_id", "support_merged_customers", ["customer_id"]
    )

    op.create_table(
        "support_erased_customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("erased_at", TZ, nullable=False),
    )

    op.create_table(
        "support_products",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("product_id", sa.String(128), nullable=False),
        sa.Column("product_model", sa.String(128)),
        sa.Column("product_model_key", sa.String(128)),
        sa.Column("name", sa.String(256)),
        sa.Column("category", sa.String(128)),
        sa.Column("serial_number", sa.String(128)),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("purchased_at", TZ, nullable=False),
        sa.Column("warranty_ends_on", sa.Date, nullable=False),
        sa.UniqueConstraint("customer_id", "order_id", "line_no"),
    )
    op.create_index("ix_support_products_customer_id", "support_products", ["customer_id"])
    op.create_index(
        "ix_support_products_product_model_key", "support_products", ["product_model_key"]
    )

    op.create_table(
        "support_tickets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128)),
        sa.Column("product_model", sa.String(128)),
        sa.Column("product_model_key", sa.String(128)),
        sa.Column("serial_number", sa.String(128)),
        sa.Column("resolution", sa.Text),
        sa.Column("duplicate_of", sa.String(64)),
        sa.Column("mention_id", sa.String(64)),
        sa.Column("rating", sa.Integer),
        sa.Column("rating_comment", sa.Text),
        sa.Column("rated_at", TZ),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("first_responded_at", TZ),
        sa.Column("resolved_at", TZ),
        sa.Column("closed_at", TZ),
        sa.Column("first_response_due_at", TZ, nullable=False),
        sa.Column("resolution_due_at", TZ, nullable=False),
    )
    op.create_index("ix_support_tickets_customer", "support_tickets", ["customer_id", "created_at"])
    op.create_index("ix_support_tickets_queue", "support_tickets", ["assignee", "status"])
    op.create_index("ix_support_tickets_listing", "support_tickets", ["created_at", "id"])
    op.create_index("ix_support_tickets_status", "support_tickets", ["status"])
    op.create_index(
        "ix_support_tickets_product_model_key", "support_tickets", ["product_model_key"]
    )

    op.create_table(
        "support_ticket_comments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("author_type", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_support_ticket_comments_ticket",
        "support_ticket_comments",
        ["ticket_id", "created_at"],
    )

    op.create_table(
        "support_ticket_links",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("linked_ticket_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_support_ticket_links_linked_ticket_id", "support_ticket_links", ["linked_ticket_id"]
    )

    op.create_table(
        "support_sla_policies",
        sa.Column("priority", sa.String(16), primary_key=True),
        sa.Column("first_response_minutes", sa.Integer, nullable=False),
        sa.Column("resolution_minutes", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )

    op.create_table(
        "support_sla_breaches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("breached_at", TZ, nullable=False),
        sa.UniqueConstraint("ticket_id", "target"),
    )
    op.create_index("ix_support_sla_breaches_ticket_id", "support_sla_breaches", ["ticket_id"])

    op.create_table(
        "support_mentions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("handle", sa.String(256), nullable=False),
        sa.Column("handle_key", sa.String(256), nullable=False),
        sa.Column("external_id", sa.String(256)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("url", sa.String(2048)),
        sa.Column("posted_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("sentiment_score", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(64)),
        sa.UniqueConstraint("platform", "external_id"),
    )
    op.create_index("ix_support_mentions_handle", "support_mentions", ["platform", "handle_key"])
    op.create_index("ix_support_mentions_listing", "support_mentions", ["received_at", "id"])
    op.create_index("ix_support_mentions_customer_id", "support_mentions", ["customer_id"])

    op.create_table(
        "support_mention_replies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("mention_id", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
    )
    op.create_index(
        "ix_support_mention_replies_mention_id", "support_mention_replies", ["mention_id"]
    )
    op.create_index(
        "ix_support_mention_replies_due", "support_mention_replies", ["status", "next_attempt_at"]
    )

    op.create_table(
        "support_reply_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reply_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", TZ, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_support_reply_attempts_reply_id", "support_reply_attempts", ["reply_id"])


def downgrade() -> None:
    for table in (
        "support_reply_attempts",
        "support_mention_replies",
        "support_mentions",
        "support_sla_breaches",
        "support_sla_policies",
        "support_ticket_links",
        "support_ticket_comments",
        "support_tickets",
        "support_products",
        "support_erased_customers",
        "support_merged_customers",
        "support_handles",
        "support_consents",
    ):
        op.drop_table(table)
    with op.batch_alter_table("support_customers") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("tier")
        batch.drop_column("city")
        batch.drop_column("country")
        batch.alter_column("phone", type_=sa.String(16), existing_type=sa.String(64))
