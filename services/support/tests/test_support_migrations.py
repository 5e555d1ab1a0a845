"""Support's migrations build the models' schema, with 64-bit row ids (SQLite and PostgreSQL)."""

import rapport_support.tables  # noqa: F401  (every domain's tables on the metadata)
from rapport_events.testing.migrations import MigrationTests
from rapport_support.main import MIGRATIONS, VERSION_TABLE


class TestSupportMigrations(MigrationTests):
    migrations = MIGRATIONS
    version_table = VERSION_TABLE
    previous_head = "0002_support_desk"
    bigint_head = "support_0003_bigint_row_ids"
    table_prefixes = ("support_",)
