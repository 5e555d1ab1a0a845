"""Campaign's migrations build the models' schema, with 64-bit row ids (SQLite and PostgreSQL)."""

from rapport_campaign.main import MIGRATIONS, VERSION_TABLE
from rapport_events.testing.migrations import MigrationTests


class TestCampaignMigrations(MigrationTests):
    migrations = MIGRATIONS
    version_table = VERSION_TABLE
    previous_head = "0002_campaign_marketing"
    bigint_head = "campaign_0003_bigint_row_ids"
    table_prefixes = ("campaign_",)
