"""The profile service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from rapport_events.db import create_engine
from rapport_events.http import (
    health_router,
    install_error_handlers,
    instrument_app,
    instrument_engine,
)
from rapport_events.migrations import upgrade
from rapport_events.runtime import EventRuntime
from rapport_events.tracing import configure_tracing
from rapport_profile import api
from rapport_profile.handlers import HANDLERS
from rapport_profile.settings import Settings, get_settings

MIGRATIONS = str(Path(__file__).parent / "migrations")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the profile app; clients start in the lifespan."""
    settings = settings or get_settings()
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
        runtime = EventRuntime(
            service=settings.service_name, engine=engine, settings=settings.kafka, handlers=HANDLERS
        )
        instrument_engine(runtime)
        app.state.runtime = runtime
        app.state.http = httpx.AsyncClient(timeout=settings.peer_timeout_s)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await app.state.http.aclose()
            await engine.dispose()

    app = FastAPI(title="Rapport profile", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    api.install_error_handlers(app)
    instrument_app(app)
    app.include_router(health_router())
    app.include_router(api.router)
    app.include_router(api.tracking_router)
    return app


app = create_app
