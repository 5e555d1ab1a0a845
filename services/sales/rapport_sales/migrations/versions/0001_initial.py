"""Outbox and inbox; customers, accounts, contacts, pipelines, opportunities, activities.

Revision ID: sales_0001_initial
Revises:
"""

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from rapport_events.columns import ROW_ID
from rapport_events.migrations import (
    add_outbox_parking,
    create_event_tables,
    drop_event_tables,
    drop_outbox_parking,
    narrow_row_ids,
    widen_row_ids,
)

revision = "sales_0001_initial"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)
PROBABILITY = sa.Numeric(5, 4)


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def upgrade() -> None:
    create_event_tables()
    add_outbox_parking()
    widen_row_ids({"outbox": ["id"]})
    op.create_table(
        "sales_customers",
        _text("customer_id", 64, False),
        _text("email", 320),
        _text("first_name", 200),
        _text("last_name", 200),
        _text("acquisition_channel", 100),
        _text("last_campaign_id", 64),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_index("ix_sales_customers_email", "sales_customers", ["email"])
    op.create_table(
        "sales_erased_customers",
        _text("customer_id", 64, False),
        _when("erased_at"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "sales_accounts",
        _text("id", 64, False),
        _text("external_id", 255),
        _text("name", 200, False),
        _text("domain", 253),
        _text("industry", 100),
        _text("size", 32),
        _text("owner", 128),
        sa.Column("traits", sa.JSON, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_index("ix_sales_accounts_domain", "sales_accounts", ["domain"])
    op.create_index("ix_sales_accounts_owner", "sales_accounts", ["owner"])
    op.create_index("ix_sales_accounts_listing", "sales_accounts", ["created_at", "id"])
    op.create_table(
        "sales_contacts",
        _text("account_id", 64, False),
        _text("customer_id", 64, False),
        _text("source", 16, False),
        _text("role", 100),
        _when("linked_at"),
        sa.PrimaryKeyConstraint("account_id", "customer_id"),
    )
    op.create_index("ix_sales_contacts_customer_id", "sales_contacts", ["customer_id"])
    op.create_table(
        "sales_pipelines",
        _text("id", 64, False),
        _text("name", 200, False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "sales_stages",
        _text("pipeline_id", 64, False),
        _text("key", 64, False),
        _text("name", 200, False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("probability", PROBABILITY, nullable=False),
        _text("outcome", 8, False),
        sa.PrimaryKeyConstraint("pipeline_id", "key"),
    )
    _default_pipeline()
    op.create_table(
        "sales_opportunities",
        _text("id", 64, False),
        _text("pipeline_id", 64, False),
        _text("account_id", 64, False),
        _text("customer_id", 64),
        _text("name", 200, False),
        _text("owner", 128),
        sa.Column("amount", MONEY, nullable=False),
        _text("currency", 3, False),
        sa.Column("expected_close_date", sa.Date, nullable=True),
        _text("stage", 64, False),
        sa.Column("probability", PROBABILITY, nullable=False),
        _text("status", 8, False),
        _text("source", 200),
        sa.Column("products", sa.JSON, nullable=False),
        _text("lost_reason", 500),
        _text("order_id", 64),
        _when("created_at"),
        _when("updated_at"),
        _when("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sales_opportunities_account_id", "sales_opportunities", ["account_id"])
    op.create_index("ix_sales_opportunities_customer_id", "sales_opportunities", ["customer_id"])
    op.create_index("ix_sales_opportunities_owner", "sales_opportunities", ["owner"])
    op.create_index("ix_sales_opportunities_listing", "sales_opportunities", ["created_at", "id"])
    op.create_index(
        "ix_sales_opportunities_pipeline",
        "sales_opportunities",
        ["pipeline_id", "status", "stage", "owner", "currency", "amount", "probability"],
    )
    op.create_index(
        "ix_sales_opportunities_close", "sales_opportunities", ["status", "expected_close_date"]
    )
    op.create_table(
        "sales_opportunity_contacts",
        _text("opportunity_id", 64, False),
        _text("customer_id", 64, False),
        sa.PrimaryKeyConstraint("opportunity_id", "customer_id"),
    )
    op.create_index(
        "ix_sales_opportunity_contacts_customer_id", "sales_opportunity_contacts", ["customer_id"]
    )
    op.create_table(
        "sales_stage_changes",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        _text("opportunity_id", 64, False),
        _text("from_stage", 64),
        _text("to_stage", 64, False),
        _when("changed_at"),
    )
    op.create_index(
        "ix_sales_stage_changes_opportunity_id", "sales_stage_changes", ["opportunity_id"]
    )
    op.create_table(
        "sales_activities",
        _text("id", 64, False),
        _text("kind", 16, False),
        _text("account_id", 64),
        _text("subject", 500, False),
        sa.Column("body", sa.Text, nullable=False),
        _text("owner", 128),
        _when("occurred_at"),
        _when("due_at", nullable=True),
        _when("done_at", nullable=True),
        _when("starts_at", nullable=True),
        _when("ends_at", nullable=True),
        _text("location", 500),
        sa.Column("addresses", sa.JSON, nullable=False),
        _text("message_id", 998),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sales_activities_account", "sales_activities", ["account_id", "occurred_at"]
    )
    op.create_index(
        "ix_sales_activities_tasks", "sales_activities", ["kind", "owner", "done_at", "due_at"]
    )
    op.create_table(
        "sales_activity_contacts",
        _text("activity_id", 64, False),
        _text("customer_id", 64, False),
        sa.PrimaryKeyConstraint("activity_id", "customer_id"),
    )
    op.create_index(
        "ix_sales_activity_contacts_customer_id", "sales_activity_contacts", ["customer_id"]
    )


# The pipeline every opportunity lands in unless it names another.
DEFAULT_STAGES = [
    ("lead", "Lead", "0.1", "open"),
    ("qualified", "Qualified", "0.25", "open"),
    ("proposal", "Proposal", "0.5", "open"),
    ("negotiation", "Negotiation", "0.75", "open"),
    ("won", "Won", "1", "won"),
    ("lost", "Lost", "0", "lost"),
]


def _default_pipeline() -> None:
    pipelines = sa.table(
        "sales_pipelines", sa.column("id"), sa.column("name"), sa.column("created_at")
    )
    stages = sa.table(
        "sales_stages",
        sa.column("pipeline_id"),
        sa.column("key"),
        sa.column("name"),
        sa.column("position"),
        sa.column("probability", PROBABILITY),
        sa.column("outcome"),
    )
    op.bulk_insert(
        pipelines,
        [{"id": "default", "name": "Default", "created_at": datetime(2026, 1, 1, tzinfo=UTC)}],
    )
    op.bulk_insert(
        stages,
        [
            {
                "pipeline_id": "default",
                "key": key,
                "name": name,
                "position": position,
                "probability": Decimal(probability),
                "outcome": outcome,
            }
            for position, (key, name, probability, outcome) in enumerate(DEFAULT_STAGES)
        ],
    )
    op.create_table(
        "sales_documents",
        _text("id", 64, False),
        _text("filename", 255, False),
        _text("content_type", 127, False),
        sa.Column("size", sa.Integer, nullable=False),
        _text("sha256", 64, False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in (
        "sales_documents",
        "sales_activity_contacts",
        "sales_activities",
        "sales_stage_changes",
        "sales_opportunity_contacts",
        "sales_opportunities",
        "sales_stages",
        "sales_pipelines",
        "sales_contacts",
        "sales_accounts",
        "sales_erased_customers",
        "sales_customers",
    ):
        op.drop_table(table)
    narrow_row_ids({"outbox": ["id"]})
    drop_outbox_parking()
    drop_event_tables()
