"""The campaign service: create_app() and the lifespan that owns its clients."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from rapport_campaign.audience import api as audience_api
from rapport_campaign.campaigns import api as campaign_api
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.journeys import api as journey_api
from rapport_campaign.segments import api as segment_api
from rapport_campaign.settings import Settings, get_settings
from rapport_campaign.tracking import api as tracking_api
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.worker import Worker
from rapport_events.assembly import Extras, ServiceDefinition, build_app
from rapport_events.runtime import EventRuntime

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_campaign"
DESCRIPTION = """Segments and campaigns of Rapport, an open-source event-driven CRM.

Segments over customer attributes and behaviour, kept current as events arrive on the
customer event log; broadcasts with A/B tests and triggered journeys (welcome, abandoned
cart, re-engagement) over e-mail (SMTP) and signed webhooks; open and click tracking;
orders attributed to the messages that led to them; channel analytics.

Authentication: `Authorization: Bearer <token>` on every route but the probes and the
links inside messages (`/t`, `/o`, `/u`), which carry a signed token."""
TAGS = [
    {"name": "segments", "description": "Rules over attributes and behaviour, and members"},
    {"name": "campaigns", "description": "Broadcasts: create, launch, cancel, report"},
    {"name": "journeys", "description": "Triggered messages: welcome, abandoned cart, ..."},
    {"name": "audience", "description": "A customer as campaign sees them"},
    {"name": "analytics", "description": "Acquisition channels and campaign results"},
    {"name": "privacy", "description": "What campaign holds about a customer"},
    {"name": "tracking", "description": "Links inside messages: click, open, unsubscribe"},
]


@asynccontextmanager
async def setup(app: FastAPI, runtime: EventRuntime) -> AsyncIterator[Extras]:
    """The link signer, the HTTP client of webhook channels, the sender and scheduler."""
    settings: Settings = app.state.settings
    async with httpx.AsyncClient() as http:
        tokens = Tokens(
            settings.signing_secret, settings.public_url, settings.link_token_max_age_days
        )
        worker = Worker(sessions=runtime.sessions, settings=settings, tokens=tokens, http=http)
        app.state.tokens = tokens
        app.state.worker = worker
        yield Extras(workers=[worker])


CAMPAIGN = ServiceDefinition(
    title="Rapport campaign",
    description=DESCRIPTION,
    tags=TAGS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    handlers=HANDLERS,
    routers=[
        audience_api.router,
        segment_api.router,
        campaign_api.router,
        journey_api.router,
        campaign_api.analytics,
        tracking_api.public,
    ],
    setup=setup,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the campaign app; clients start in the lifespan."""
    return build_app(CAMPAIGN, settings or get_settings())


app = create_app
