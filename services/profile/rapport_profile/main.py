"""The profile service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from rapport_events.http import (
    health_router,
    install_error_handlers,
    instrument_app,
    open_event_runtime,
    service_app,
)
from rapport_events.supervisor import Periodic
from rapport_events.tracing import configure_tracing
from rapport_profile.analytics import api as analytics_api
from rapport_profile.analytics import forecasts
from rapport_profile.consents import api as consent_api
from rapport_profile.customers import api as customer_api
from rapport_profile.gdpr import api as gdpr_api
from rapport_profile.handlers import HANDLERS
from rapport_profile.identity import api as identity_api
from rapport_profile.settings import Settings, get_settings
from rapport_profile.timeline import api as timeline_api
from rapport_profile.tracking import api as tracking_api
from rapport_profile.tracking import docs as tracking_docs
from rapport_profile.tracking import edge as tracking_edge

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_profile"
DESCRIPTION = """The customer 360 of Rapport, an open-source event-driven CRM.

Customers and their demographics, identity resolution, consents, the timeline of everything
the customer event log holds about a customer (from every service), order metrics and
profitability, trends and forecasts, GDPR export and erasure, and ingestion compatible
with Segment's HTTP Tracking API, so front-end and server SDKs send here unchanged.

Authentication: `Authorization: Bearer <token>` on every route but the probes and the
tracking API; the tracking API (`/v1/*`) takes a write key as the HTTP Basic user or as
`writeKey` in the body.
Every state change is published to the log as a CloudEvent."""
TAGS = [
    {"name": "customers", "description": "Register, read, change and search customers"},
    {"name": "consents", "description": "Consents per purpose, channel and partner"},
    {"name": "identity", "description": "Merging duplicates, and undoing a merge"},
    {"name": "activity", "description": "The timeline and the order metrics of a customer"},
    {"name": "privacy", "description": "Disclosures to partners, export and erasure"},
    {"name": "analytics", "description": "Trends, profitability tiers, forecasts"},
    {"name": "tracking", "description": "Segment's HTTP Tracking API, with a write key"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the profile app; clients start in the lifespan."""
    settings = settings or get_settings()
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_event_runtime(
            app,
            settings,
            migrations=MIGRATIONS,
            version_table=VERSION_TABLE,
            handlers=HANDLERS,
            dependencies={"settings": settings},
        )
        engine = runtime.engine
        app.state.http = httpx.AsyncClient(timeout=settings.peer_timeout_s)
        forecaster = forecasts.Forecaster(runtime.sessions, forecasts.FitWorker())
        # Before the service is ready: the first forecast call reads a stored model
        # instead of waiting for the import and a fit.
        await forecaster.load()
        app.state.forecaster = forecaster
        await runtime.start()
        # Readiness waits for the default forecast only when no model of it was stored
        # (a fresh database with history): once, never on a restart with stored models.
        await forecaster.ensure(forecasts.DEFAULT_KEY)
        # Models are fitted now and on a schedule, never first on a request for the defaults.
        fitting = Periodic(
            "forecast-models",
            forecaster.refresh,
            settings.forecast_refresh_s,
            policy=settings.kafka.restart_policy(),
        )
        runtime.watch(fitting.start())
        try:
            yield
        finally:
            await fitting.stop()
            await forecaster.stop()
            await runtime.stop()
            await app.state.http.aclose()
            await engine.dispose()

    app = service_app(
        title="Rapport profile", description=DESCRIPTION, lifespan=lifespan, tags=TAGS
    )
    app.state.settings = settings
    tracking_docs.document(app)
    install_error_handlers(app)
    # Outside the size limit, so its 413 gets Segment's shape and CORS headers too.
    app.add_middleware(tracking_edge.SegmentErrors)
    app.add_middleware(tracking_edge.TrackingCors, origins=settings.tracking_cors_origins)
    instrument_app(app)
    app.include_router(health_router())
    # In this order, the paths of /openapi.json keep theirs.
    for domain in (customer_api, consent_api, identity_api, timeline_api, gdpr_api, analytics_api):
        app.include_router(domain.router)
    app.include_router(tracking_api.router)
    return app


app = create_app
