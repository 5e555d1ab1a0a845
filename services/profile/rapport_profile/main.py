"""The profile service: what sets it apart at start-up, and its create_app()."""

from pathlib import Path

import httpx
from fastapi import FastAPI

from rapport_events.assembly import Extras, ServiceDefinition, Startup, app_factory
from rapport_profile.analytics import api as analytics_api
from rapport_profile.analytics import forecasts
from rapport_profile.consents import api as consent_api
from rapport_profile.customers import api as customer_api
from rapport_profile.gdpr import api as gdpr_api
from rapport_profile.handlers import HANDLERS
from rapport_profile.identity import api as identity_api
from rapport_profile.overview import api as overview_api
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


async def setup(startup: Startup[Settings]) -> Extras:
    """The HTTP client of peers (export, erasure) and the forecast models."""
    settings = startup.settings
    # Peers answer within the configured time, not httpx's default.
    startup.http.timeout = httpx.Timeout(settings.peer_timeout_s)
    startup.app.state.http = startup.http
    forecaster = forecasts.Forecaster(startup.runtime.sessions, forecasts.FitWorker())
    # Before the service is ready: the first forecast call reads a stored model
    # instead of waiting for the import and a fit.
    await forecaster.load()
    startup.closing.push_async_callback(forecaster.stop)
    startup.app.state.forecaster = forecaster
    # Models are fitted now and on a schedule, never first on a request for the defaults.
    fitting = startup.periodic("forecast-models", forecaster.refresh, settings.forecast_refresh_s)
    # Readiness waits for the default forecast only when no model of it was stored
    # (a fresh database with history): once, never on a restart with stored models.
    return Extras(workers=[fitting], on_start=lambda: forecaster.ensure(forecasts.DEFAULT_KEY))


def configure(app: FastAPI) -> None:
    """The tracking API's OpenAPI description, and its CORS and Segment-shaped errors."""
    tracking_docs.document(app)
    # Outside the size limit, so its 413 gets Segment's shape and CORS headers too.
    app.add_middleware(tracking_edge.SegmentErrors)
    settings: Settings = app.state.settings
    app.add_middleware(tracking_edge.TrackingCors, origins=settings.tracking_cors_origins)


PROFILE = ServiceDefinition(
    title="Rapport profile",
    description=DESCRIPTION,
    tags=TAGS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    handlers=HANDLERS,
    # In this order, the paths of /openapi.json keep theirs.
    routers=[
        customer_api.router,
        consent_api.router,
        identity_api.router,
        timeline_api.router,
        gdpr_api.router,
        analytics_api.router,
        tracking_api.router,
        # Last: the paths before it keep their place in /openapi.json.
        overview_api.router,
    ],
    setup=setup,
    configure=configure,
)

create_app = app_factory(PROFILE, get_settings)

app = create_app
