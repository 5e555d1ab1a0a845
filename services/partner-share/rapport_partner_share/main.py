"""The partner-share service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from rapport_events.assembly import Extras, ServiceDefinition, build_app
from rapport_events.db import create_engine
from rapport_events.runtime import EventRuntime
from rapport_events.supervisor import Periodic
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


@asynccontextmanager
async def setup(app: FastAPI, runtime: EventRuntime) -> AsyncIterator[Extras]:
    """The shared rate limiter (PostgreSQL), the HTTP client, the filler and notifier."""
    settings: Settings = app.state.settings
    limits_engine = None
    if runtime.engine.dialect.name == "postgresql":
        # Its own connections: they commit without waiting for the disk (SERVER_SETTINGS).
        limits_engine = create_engine(
            settings.database_url,
            pool_size=2,
            max_overflow=4,
            connect_args={"server_settings": SharedRateLimiter.SERVER_SETTINGS},
        )
        app.state.rate_limiter = SharedRateLimiter(limits_engine)
    try:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            profile = ProfileClient(
                http, settings.profile_url, settings.profile_token, settings.profile_timeout_s
            )
            yield Extras(workers=_workers(runtime, settings, http, profile))
    finally:
        if limits_engine is not None:
            await limits_engine.dispose()


def _workers(
    runtime: EventRuntime, settings: Settings, http: httpx.AsyncClient, profile: ProfileClient
) -> list[Periodic]:
    interval = settings.worker_poll_interval_s
    policy = settings.kafka.restart_policy()
    return [
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


def _in_memory_rate_limiter(app: FastAPI) -> None:
    # One process's count; on PostgreSQL the lifespan swaps in the one replicas share.
    app.state.rate_limiter = RateLimiter()


PARTNER_SHARE = ServiceDefinition(
    title="Rapport partner-share",
    description=DESCRIPTION,
    tags=TAGS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    handlers=HANDLERS,
    # In the order the OpenAPI document lists them (its tags' order).
    routers=[
        partners.router,
        ledger.router,
        customers.router,
        slices.partner_router,
        notices.partner_router,
    ],
    setup=setup,
    configure=_in_memory_rate_limiter,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the partner-share app; clients start in the lifespan."""
    return build_app(PARTNER_SHARE, settings or get_settings())


app = create_app
