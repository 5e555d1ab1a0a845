"""The sales service: create_app() and the lifespan that owns its clients."""

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
from rapport_events.tracing import configure_tracing
from rapport_sales.accounts import api as accounts
from rapport_sales.activities import api as activities
from rapport_sales.customers import api as customers
from rapport_sales.handlers import HANDLERS
from rapport_sales.opportunities import api as opportunities
from rapport_sales.peers import ProfileClient
from rapport_sales.reports import api as reports
from rapport_sales.settings import Settings, get_settings

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_sales"
DESCRIPTION = """Accounts, opportunities and the pipeline forecast, and the history of
tasks, meetings, calls and e-mails per account, in Rapport, an open-source event-driven CRM.

Contacts are profile's customers: Segment `group` calls (through profile) and explicit
links make them contacts of accounts. Opportunities move through pipelines of ordered
stages with win probabilities; every stage change is an event on the customer log, and a
won deal can record an order that reaches profile's metrics and campaign's attribution.

Authentication: `Authorization: Bearer <token>` on every route but the probes."""
TAGS = [
    {"name": "accounts", "description": "Companies, their contacts and their timeline"},
    {"name": "pipelines", "description": "Sales processes: ordered stages, win probabilities"},
    {"name": "opportunities", "description": "Deals: open, move, win (with an order), lose"},
    {"name": "reports", "description": "Pipeline by stage and owner, forecast, win rate"},
    {"name": "activities", "description": "Tasks, meetings (.ics), calls, notes, e-mails"},
    {"name": "customers", "description": "A customer's sales data, and its export"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the sales app; clients and the consumer start in the lifespan."""
    settings = settings or get_settings()
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_event_runtime(
            app,
            settings,
            migrations=MIGRATIONS,
            version_table=VERSION_TABLE,
            handlers=HANDLERS if settings.consume_events else None,
            dependencies={"settings": settings},
        )
        engine = runtime.engine
        http = httpx.AsyncClient(follow_redirects=False)
        app.state.profile = ProfileClient(http, settings)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await http.aclose()
            await engine.dispose()

    app = service_app(title="Rapport sales", description=DESCRIPTION, lifespan=lifespan, tags=TAGS)
    app.state.settings = settings
    install_error_handlers(app)
    instrument_app(app)
    app.include_router(health_router())
    # In this order /openapi.json lists the paths (accounts, pipelines and opportunities,
    # reports, activities, customers).
    for domain in (accounts, opportunities, reports, activities, customers):
        app.include_router(domain.router)
    return app


app = create_app
