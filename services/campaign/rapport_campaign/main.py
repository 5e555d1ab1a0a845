"""The campaign service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from rapport_campaign import api, service
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.settings import Settings, get_settings
from rapport_campaign.tracking import Tokens
from rapport_campaign.worker import Worker
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

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_campaign"


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message, "detail": message}, status_code=status_code
    )


def install_service_errors(app: FastAPI) -> None:
    """The use cases' errors as JSON 404 / 409 / 422, in the shape of every other error."""

    @app.exception_handler(service.NotFound)
    async def _not_found(_request: Request, exc: service.NotFound) -> JSONResponse:
        return _error(status.HTTP_404_NOT_FOUND, "not_found", str(exc))

    @app.exception_handler(service.Conflict)
    async def _conflict(_request: Request, exc: service.Conflict) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, "conflict", str(exc))

    @app.exception_handler(service.InvalidRequest)
    async def _invalid(_request: Request, exc: service.InvalidRequest) -> JSONResponse:
        return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, "validation_error", str(exc))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the campaign app; clients start in the lifespan."""
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
        http = httpx.AsyncClient()
        tokens = Tokens(
            settings.signing_secret, settings.public_url, settings.link_token_max_age_days
        )
        worker = Worker(sessions=runtime.sessions, settings=settings, tokens=tokens, http=http)
        app.state.runtime = runtime
        app.state.tokens = tokens
        app.state.worker = worker
        await runtime.start()
        runtime.watch(*worker.start())
        try:
            yield
        finally:
            await worker.stop()
            await runtime.stop()
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="Rapport campaign", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    install_service_errors(app)
    instrument_app(app)
    app.include_router(health_router())
    app.include_router(api.router)
    app.include_router(api.public)
    return app


app = create_app
