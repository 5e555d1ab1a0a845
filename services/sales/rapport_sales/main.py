"""The sales service: what sets it apart at start-up, and its create_app()."""

from pathlib import Path

from rapport_events.assembly import Extras, ServiceDefinition, Startup, app_factory
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


async def setup(startup: Startup[Settings]) -> Extras:
    """The client of profile, for contacts' timelines and the historical forecast."""
    startup.app.state.profile = ProfileClient(startup.http, startup.settings)
    return Extras()


SALES = ServiceDefinition(
    title="Rapport sales",
    description=DESCRIPTION,
    tags=TAGS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    handlers=HANDLERS,
    # Accounts, pipelines and opportunities, reports, activities, customers.
    routers=[
        accounts.router,
        opportunities.router,
        reports.router,
        activities.router,
        customers.router,
    ],
    setup=setup,
)

create_app = app_factory(SALES, get_settings)

app = create_app
