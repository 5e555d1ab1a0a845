"""`python -m rapport_partner_share.replay`: refused, with the reason.

Partner-share's shared slices do not come from the log alone: after a consent, a worker
fetches the profile-backed slices from profile over HTTP (`slices.fills`). A database rebuilt
from the log would answer partners with slices missing until every fill ran again, and
the disclosure ledger and notifications are records of what was done, not projections.
"""

import sys

from rapport_events.replay import ReplayPlan, command
from rapport_partner_share.handlers import HANDLERS
from rapport_partner_share.main import MIGRATIONS, VERSION_TABLE
from rapport_partner_share.settings import get_settings

PLAN = ReplayPlan(
    service="partner-share",
    handlers=HANDLERS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    refusal=(
        "its shared slices are partly fetched from profile over HTTP after each consent "
        "(fills), not read from the log; a rebuilt projection would show partners "
        "incomplete slices"
    ),
)

run = command(PLAN, get_settings, needs_settings=False)  # refuses with the reason above


if __name__ == "__main__":
    sys.exit(run())
