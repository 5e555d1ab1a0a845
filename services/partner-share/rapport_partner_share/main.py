"""The partner-share service: what sets it apart at start-up, and its create_app()."""

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.assembly import Extras, ServiceDefinition, Startup, app_factory
from rapport_events.db import create_engine
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


async def setup(startup: Startup[Settings]) -> Extras:
    """The shared rate limiter (PostgreSQL), the client of profile, the filler and notifier."""
    settings, sessions, http = startup.settings, startup.runtime.sessions, startup.http
    if startup.runtime.engine.dialect.name == "postgresql":
        startup.app.state.rate_limiter = SharedRateLimiter(_limits_engine(startup))
    profile = ProfileClient(
        http, settings.profile_url, settings.profile_token, settings.profile_timeout_s
    )
    interval = settings.worker_poll_interval_s
    filler = startup.periodic("partner-share-filler", lambda: fill_due(sessions, profile), interval)
    notifier = startup.periodic(
        "partner-share-notifier", lambda: deliver_due(sessions, http, settings), interval
    )
    return Extras(workers=[filler, notifier])


def _limits_engine(startup: Startup[Settings]) -> AsyncEngine:
    # Its own connections: they commit without waiting for the disk (SERVER_SETTINGS).
    engine = create_engine(
        startup.settings.database_url,
        pool_size=2,
        max_overflow=4,
        connect_args={"server_settings": SharedRateLimiter.SERVER_SETTINGS},
    )
    startup.closing.push_async_callback(engine.dispose)
    return engine


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

create_app = app_factory(PARTNER_SHARE, get_settings)

app = create_app
