"""Alembic, run from the service's lifespan on the service's own engine."""

import hashlib
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def _config(connection: Connection, script_location: str, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("version_table", version_table)
    config.attributes["connection"] = connection
    return config


async def upgrade(
    engine: AsyncEngine, script_location: str, version_table: str, revision: str = "heads"
) -> None:
    """Bring the database to `revision`, by default the newest of every branch (idempotent).

    Replicas starting at once on one PostgreSQL database run this together: each waits
    for the database's migration lock, so the first migrates and the others find the
    schema current (without it the second failed on a table the first had just created).
    """

    def _upgrade(connection: Connection) -> None:
        command.upgrade(_config(connection, script_location, version_table), revision)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends, so it covers the whole upgrade (PostgreSQL
            # runs DDL in the transaction) and is released by a process that dies.
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            await connection.execute(lock.bindparams(key=migration_lock_key(version_table)))
        await connection.run_sync(_upgrade)


def migration_lock_key(version_table: str) -> int:
    """The advisory lock key under which a service's migrations run, one per version table."""
    digest = hashlib.sha256(f"rapport.migrations.{version_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def downgrade(
    engine: AsyncEngine, script_location: str, version_table: str, revision: str
) -> None:
    """Take the database back to `revision`."""

    def _downgrade(connection: Connection) -> None:
        command.downgrade(_config(connection, script_location, version_table), revision)

    async with engine.begin() as connection:
        await connection.run_sync(_downgrade)


def run_env(target_metadata: MetaData) -> None:
    """The body of each service's `migrations/env.py`."""
    config = context.config
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def create_event_tables() -> None:
    """The outbox and inbox tables every service has; call from its first migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_event_tables() -> None:
    """Undo `create_event_tables`."""
    op.drop_table("inbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")


def add_outbox_parking() -> None:
    """`parked_at` and `park_reason` on the outbox; pending rows are those with neither date.

    Plain ALTER TABLEs, no batch mode: SQLite adds a column in place, where a batch would
    recreate the table.
    """
    op.add_column("outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("park_reason", sa.String(1024), nullable=True))
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "parked_at", "id"])


def drop_outbox_parking() -> None:
    """Undo `add_outbox_parking`; parked rows become pending again."""
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    op.drop_column("outbox", "park_reason")
    op.drop_column("outbox", "parked_at")


def widen_row_ids(columns: Mapping[str, Sequence[str]]) -> None:
    """Make autoincrement ids, and the columns pointing at them, 64-bit: {table: [column]}.

    Only PostgreSQL needs it: SQLite's INTEGER is already 64-bit, and batch mode there
    would recreate the tables and drop their triggers (partner-share's append-only ledger).
    PostgreSQL rewrites each table under an exclusive lock, so list referenced tables
    before the tables that point at them and expect the time a rewrite of that size takes.
    """
    _retype_row_ids(columns, "BIGINT")


def narrow_row_ids(columns: Mapping[str, Sequence[str]]) -> None:
    """Undo `widen_row_ids`; fails, changing nothing, once an id is past 2**31 - 1."""
    _retype_row_ids({table: columns[table] for table in reversed(list(columns))}, "INTEGER")


def _retype_row_ids(columns: Mapping[str, Sequence[str]], sql_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    quote = bind.dialect.identifier_preparer.quote
    for table, names in columns.items():
        changes = ", ".join(f"ALTER COLUMN {quote(name)} TYPE {sql_type}" for name in names)
        op.execute(f"ALTER TABLE {quote(table)} {changes}")
        for name in names:
            # The SERIAL's sequence is typed too ("AS integer" stops at 2**31 - 1).
            sequence = bind.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quote(table), "column": name},
            ).scalar()
            if sequence is not None:
                op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")
