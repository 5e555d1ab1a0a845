"""`python -m rapport_profile.replay`: refused, with the reason.

Profile's projection (timeline, orders and metrics, segment memberships, disclosures) is
built from the log, but its API also moves and deletes those rows when it merges or
erases a customer, and it owns the customers, identities, consents and erasures the
projection resolves every event through. No replay of it has been shown to give back the
rows the live service holds, so none is offered.
"""

import sys

from rapport_events.replay import ReplayPlan, command
from rapport_profile.handlers import HANDLERS
from rapport_profile.main import MIGRATIONS
from rapport_profile.settings import get_settings

PLAN = ReplayPlan(
    service="profile",
    handlers=HANDLERS,
    migrations=MIGRATIONS,
    version_table="alembic_version_profile",
    refusal=(
        "its API moves and deletes projection rows on merge and erasure, and the "
        "projection resolves every event through tables only the API writes (customers, "
        "identities, erasures); a rebuilt timeline is not proven equal to the live one"
    ),
)

run = command(PLAN, get_settings)  # refuses with the reason above


if __name__ == "__main__":
    sys.exit(run())
