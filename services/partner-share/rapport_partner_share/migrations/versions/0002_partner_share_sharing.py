"""Partners, API keys, consents, shared slices, match keys, audit ledger, notifications.

Revision ID: partner_share_0002_sharing
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "partner_share_0002_sharing"
down_revision = "0001"
branch_labels = None
depends_on = None

LEDGER = "partner_share_disclosures"
APPEND_ONLY_MESSAGE = "partner_share_disclosures is an append-only audit ledger"


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "partner_share_partners",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("industry", sa.String(100), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("purposes", sa.JSON, nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("webhook_secret", sa.String(128), nullable=False),
        sa.Column("ref_key", sa.String(64), nullable=False),
        sa.Column("rate_limit_per_second", sa.Float, nullable=False),
        sa.Column("rate_limit_burst", sa.Integer, nullable=False),
        _when("created_at"),
        _when("deleted_at", nullable=True),
    )
    op.create_table(
        "partner_share_api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "partner_id",
            sa.String(64),
            sa.ForeignKey("partner_share_partners.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        _when("created_at"),
        _when("revoked_at", nullable=True),
    )
    op.create_table(
        "partner_share_consents",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        _when("granted_at", nullable=True),
        _when("changed_at"),
        sa.Column("fill_pending", sa.Boolean, nullable=False),
        sa.Column("fill_token", sa.Integer, nullable=False),
        sa.Column("fill_attempts", sa.Integer, nullable=False),
        _when("fill_next_at", nullable=True),
        sa.UniqueConstraint("partner_id", "ref", name="uq_partner_share_consents_ref"),
    )
    op.create_index(
        "ix_partner_share_consents_feed",
        "partner_share_consents",
        ["partner_id", "changed_at", "customer_id"],
    )
    op.create_table(
        "partner_share_slices",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("slice", sa.String(32), primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
        _when("updated_at"),
    )
    op.create_table(
        "partner_share_match_keys",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True, index=True),
    )
    op.create_table(
        LEDGER,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("partner_name", sa.String(200), nullable=False),
        sa.Column("partner_ref", sa.String(64), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("consent_version", sa.Integer, nullable=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        _when("disclosed_at"),
    )
    op.create_table(
        "partner_share_disclosure_subjects",
        sa.Column("disclosure_id", sa.Integer, sa.ForeignKey(f"{LEDGER}.id"), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    )
    op.create_table(
        "partner_share_notifications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("customer_id", sa.String(64), nullable=True, index=True),
        sa.Column("partner_ref", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _when("created_at"),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at", nullable=True),
        _when("delivered_at", nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        _when("acknowledged_at", nullable=True),
        sa.Column("acknowledged_via", sa.String(16), nullable=True),
    )
    op.create_table(
        "partner_share_erased_customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        _when("erased_at"),
    )
    _protect_ledger()


def _protect_ledger() -> None:
    """Make the database itself refuse to change or remove a ledger entry."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION partner_share_ledger_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}';
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            f"CREATE TRIGGER partner_share_disclosures_no_change BEFORE UPDATE OR DELETE "
            f"ON {LEDGER} FOR EACH ROW EXECUTE FUNCTION partner_share_ledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER partner_share_disclosures_no_truncate BEFORE TRUNCATE "
            f"ON {LEDGER} FOR EACH STATEMENT EXECUTE FUNCTION partner_share_ledger_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER partner_share_disclosures_no_{action.lower()} "
                f"BEFORE {action} ON {LEDGER} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS partner_share_disclosures_no_change ON {LEDGER}")
        op.execute(f"DROP TRIGGER IF EXISTS partner_share_disclosures_no_truncate ON {LEDGER}")
        op.execute("DROP FUNCTION IF EXISTS partner_share_ledger_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS partner_share_disclosures_no_update")
        op.execute("DROP TRIGGER IF EXISTS partner_share_disclosures_no_delete")
    op.drop_table("partner_share_erased_customers")
    op.drop_table("partner_share_notifications")
    op.drop_table("partner_share_disclosure_subjects")
    op.drop_table(LEDGER)
    op.drop_table("partner_share_match_keys")
    op.drop_table("partner_share_slices")
    op.drop_index("ix_partner_share_consents_feed", table_name="partner_share_consents")
    op.drop_table("partner_share_consents")
    op.drop_table("partner_share_api_keys")
    op.drop_table("partner_share_partners")
