"""The support service: what sets it apart at start-up, and its create_app()."""

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rapport_events.assembly import Extras, ServiceDefinition, Startup, app_factory
from rapport_events.db import MAX_OVERFLOW, POOL_SIZE, is_sqlite, session_factory
from rapport_events.http import instrument_engine
from rapport_support.customers import api as customers
from rapport_support.handlers import HANDLERS
from rapport_support.mentions import api as mentions
from rapport_support.mentions.worker import ReplyDispatcher
from rapport_support.products import api as products
from rapport_support.settings import Settings, get_settings
from rapport_support.tickets import api as tickets
from rapport_support.tickets.worker import SlaMonitor

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_support"
DESCRIPTION = """The support desk of Rapport, an open-source event-driven CRM.

Tickets with priorities, SLA targets and their breaches, comments, links and merges;
the products each customer owns and every earlier problem with them (the support context,
served from support's own projection of the customer event log, so it answers while
profile is down); known issues per product model; social mentions and the replies sent
to them through each platform's webhook.

Authentication: `Authorization: Bearer <token>` on every route but the probes."""
TAGS = [
    {"name": "tickets", "description": "Open, update, comment, link, merge, rate tickets"},
    {"name": "customers", "description": "A customer's support context, and export"},
    {"name": "sla", "description": "Response and resolution targets per priority"},
    {"name": "products", "description": "Known issues of a product model"},
    {"name": "social", "description": "Mentions on social platforms, and replies"},
]


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine of read-only routes.

    Every transaction of the shared SQLite engine begins IMMEDIATE, taking the write lock, so
    concurrent look-ups would queue behind each other and behind every writer. In WAL mode a
    deferred transaction reads its own snapshot beside the writer; on PostgreSQL the shared
    engine already does that.
    """
    if not is_sqlite(engine):
        return engine
    reader = create_async_engine(
        engine.url, connect_args={"timeout": 30}, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW
    )

    @event.listens_for(reader.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(reader.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return reader


async def setup(startup: Startup[Settings]) -> Extras:
    """The read engine, the SLA monitor, and the replies (to webhooks, on the HTTP client)."""
    settings, runtime, app = startup.settings, startup.runtime, startup.app
    reader = read_engine(runtime.engine)
    if reader is not runtime.engine:
        startup.closing.push_async_callback(reader.dispose)
    instrument_engine(reader)
    app.state.read_sessions = session_factory(reader)
    sla_monitor = SlaMonitor(runtime.sessions, settings)
    replies = ReplyDispatcher(runtime.sessions, settings, startup.http)
    app.state.sla_monitor, app.state.replies = sla_monitor, replies
    return Extras(workers=[sla_monitor, replies])


SUPPORT = ServiceDefinition(
    title="Rapport support",
    description=DESCRIPTION,
    tags=TAGS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    handlers=HANDLERS,
    routers=[customers.router, tickets.router, products.router, mentions.router],
    setup=setup,
)

create_app = app_factory(SUPPORT, get_settings)

app = create_app
