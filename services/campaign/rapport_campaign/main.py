"""The campaign service: what sets it apart at start-up, and its create_app()."""

from pathlib import Path

from rapport_campaign.audience import api as audience_api
from rapport_campaign.campaigns import api as campaign_api
from rapport_campaign.handlers import HANDLERS
from rapport_campaign.journeys import api as journey_api
from rapport_campaign.segments import api as segment_api
from rapport_campaign.settings import Settings, get_settings
from rapport_campaign.tracking import api as tracking_api
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.worker import Worker
from rapport_events.assembly import Extras, ServiceDefinition, Startup, app_factory

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


async def setup(startup: Startup[Settings]) -> Extras:
    """The link signer, and the sender and scheduler (webhook channels on the HTTP client)."""
    settings = startup.settings
    tokens = Tokens(settings.signing_secret, settings.public_url, settings.link_token_max_age_days)
    worker = Worker(
        sessions=startup.runtime.sessions, settings=settings, tokens=tokens, http=startup.http
    )
    startup.app.state.tokens = tokens
    startup.app.state.worker = worker
    return Extras(workers=[worker])


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

create_app = app_factory(CAMPAIGN, get_settings)

app = create_app
