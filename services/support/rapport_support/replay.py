"""Rebuild support's projection from the log: `python -m rapport_support.replay build|swap`.

Rebuilt from the log: the customers as support sees them, their consents and social
handles, merged and erased ids, and the products they own (from their orders).

Kept as they are, copied from the live database: tickets, their comments and links, SLA
policies and breaches, social mentions, replies and reply attempts. The projection also
moves some of them (a merge or a claimed handle re-files tickets and mentions): the live
rows already hold those moves, and the swap copies them over the replay's.
"""

import sys

from rapport_events.replay import ReplayPlan, command
from rapport_support.handlers import HANDLERS
from rapport_support.main import MIGRATIONS, VERSION_TABLE
from rapport_support.settings import get_settings

PLAN = ReplayPlan(
    service="support",
    handlers=HANDLERS,
    migrations=MIGRATIONS,
    version_table=VERSION_TABLE,
    rebuilds=(
        "support_customers",
        "support_consents",
        "support_handles",
        "support_merged_customers",
        "support_erased_customers",
        "support_products",
    ),
    keeps=(
        "support_tickets",
        "support_ticket_comments",
        "support_ticket_links",
        "support_sla_policies",
        "support_sla_breaches",
        "support_mentions",
        "support_mention_replies",
        "support_reply_attempts",
    ),
)

run = command(PLAN, get_settings)


if __name__ == "__main__":
    sys.exit(run())
