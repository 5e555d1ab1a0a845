"""The partner-share service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rapport_events.db import create_engine
from rapport_events.http import (
    health_router,
    install_error_handlers,
    instrument_app,
    instrument_engine,
)
from rapport_events.migrations import upgrade
from rapport_events.runtime import EventRuntime
from rapport_events.supervisor import Periodic
from rapport_events.tracing import configure_tracing
from rapport_partner_share import api, service
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.ratelimit import RateLimiter
from rapport_partner_share.settings import Settings, get_settings
from rapport_partner_share.workers import ProfileClient, deliver_due, fill_due

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_partner_share"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the partner-share app; clients start in the lifespan."""
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
            handlers=HANDLERS if settings.consume_events else None,
        )
        instrument_engine(runtime)
        app.state.runtime = runtime
        await runtime.start()
        http = httpx.AsyncClient(follow_redirects=False)
        profile = ProfileClient(
            http, settings.profile_url, settings.profile_token, settings.profile_timeout_s
        )
        interval = settings.worker_poll_interval_s
        policy = settings.kafka.restart_policy()
        workers = [
            Periodic(
                "partner-share-filler",
                lambda: fill_due(runtime.sessions, profile),
                interval,
                policy=policy,
            ),
            Periodic(
                "partner-share-notifier",
                lambda: deliver_due(runtime.sessions, http, settings),
                interval,
                policy=policy,
            ),
        ]
        runtime.watch(*(worker.start() for worker in workers))
        try:
            yield
        finally:
            for worker in workers:
                await worker.stop()
            await http.aclose()
            await runtime.stop()
            await engine.dispose()

    app = FastAPI(title="Rapport partner-share", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter()
    install_error_handlers(app)
    app.add_exception_handler(service.InvalidRequest, _invalid_request)
    instrument_app(app)
    app.include_router(health_router())
    app.include_router(api.router)
    app.include_router(api.partner_router)
    return app


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    message = str(exc)
    return JSONResponse(
        {"error": "invalid_request", "message": message, "detail": message}, status_code=400
    )


app = create_app
