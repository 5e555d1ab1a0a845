"""The support service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rapport_events.db import create_engine, is_sqlite, session_factory
from rapport_events.http import (
    health_router,
    install_error_handlers,
    instrument_app,
    instrument_engine,
)
from rapport_events.migrations import upgrade
from rapport_events.runtime import EventRuntime
from rapport_events.tracing import configure_tracing
from rapport_support import api
from rapport_support.background import ReplyDispatcher, SlaMonitor
from rapport_support.handlers import HANDLERS
from rapport_support.settings import Settings, get_settings

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_support"


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine of read-only routes.

    Every transaction of the shared SQLite engine begins IMMEDIATE, taking the write lock, so
    concurrent look-ups would queue behind each other and behind every writer. In WAL mode a
    deferred transaction reads its own snapshot beside the writer; on PostgreSQL the shared
    engine already does that.
    """
    if not is_sqlite(engine):
        return engine
    reader = create_async_engine(engine.url, connect_args={"timeout": 30})

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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the support app; clients and background workers start in the lifespan."""
    settings = settings or get_settings()
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
        runtime = EventRuntime(
            service=settings.service_name,
            engine=engine,
            settings=settings.kafka,
            handlers=HANDLERS,
            dependencies={"settings": settings},
        )
        instrument_engine(runtime)
        app.state.runtime = runtime
        reader = read_engine(engine)
        app.state.read_sessions = session_factory(reader)
        webhook_client = httpx.AsyncClient(follow_redirects=False)
        sla_monitor = SlaMonitor(runtime.sessions, settings)
        replies = ReplyDispatcher(runtime.sessions, settings, webhook_client)
        app.state.sla_monitor, app.state.replies = sla_monitor, replies
        await runtime.start()
        runtime.watch(sla_monitor.start(), replies.start())
        try:
            yield
        finally:
            await replies.stop()
            await sla_monitor.stop()
            await runtime.stop()
            await webhook_client.aclose()
            await reader.dispose()
            await engine.dispose()

    app = FastAPI(title="Rapport support", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    api.install_error_handlers(app)
    instrument_app(app)
    app.include_router(health_router())
    app.include_router(api.router)
    return app


app = create_app
