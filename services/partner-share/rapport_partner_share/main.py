"""The partner-share service: create_app() and the lifespan that owns its clients."""

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
    open_event_runtime,
    service_app,
)
from rapport_events.supervisor import Periodic
from rapport_events.tracing import configure_tracing
from rapport_partner_share.customers import api as customers
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.ledger import api as ledger
from rapport_partner_share.notices import api as notices
from rapport_partner_share.notices.worker import deliver_due
from rapport_partner_share.partners import api as partners
from rapport_partner_share.partners.ratelimit import RateLimiter, SharedRateLimiter
from rapport_partner_share.settings import Settings, get_settings
from rapport_partner_share.slices import api as slices
from rapport_partner_share.slices.worker import ProfileClient, fill_due

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_partner_share"
DESCRIPTION = """Consented customer data for partner companies, in Rapport, an open-source
event-driven CRM.

Operators register partners (their slices, purposes and webhook) and their API keys;
partners read the customers who consented to share with them, only the consented slices,
under a pseudonymous reference; match hashed e-mails; contribute events; and receive
deletion notices. Every disclosure is written to an append-only ledger.

Authentication: `Authorization: Bearer <token>` for operators (every route but the probes
and `/partner/v1/*`); `X-API-Key: <partner key>` for partners on `/partner/v1/*`."""
TAGS = [
    {"name": "partners", "description": "Register partners and manage their API keys"},
    {"name": "audit", "description": "The disclosure ledger and the deletion notices"},
    {"name": "customers", "description": "What partners were shown about a customer"},
    {"name": "partner API", "description": "What a partner calls, with its `X-API-Key`"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the partner-share app; clients start in the lifespan."""
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
        )
        engine = runtime.engine
        limits_engine = None
        if engine.dialect.name == "postgresql":
            limits_engine = create_engine(
                settings.database_url,
                pool_size=2,
                max_overflow=4,
                connect_args={"server_settings": SharedRateLimiter.SERVER_SETTINGS},
            )
            app.state.rate_limiter = SharedRateLimiter(limits_engine)
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
            if limits_engine is not None:
                await limits_engine.dispose()
            await engine.dispose()

    app = service_app(
        title="Rapport partner-share", description=DESCRIPTION, lifespan=lifespan, tags=TAGS
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter()
    install_error_handlers(app)
    instrument_app(app)
    app.include_router(health_router())
    # Routes are included in the order the OpenAPI document lists them (its tags' order).
    app.include_router(partners.router)
    app.include_router(ledger.router)
    app.include_router(customers.router)
    app.include_router(slices.partner_router)
    app.include_router(notices.partner_router)
    return app


app = create_app
