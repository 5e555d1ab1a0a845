"""Profile's migrations build the models' schema, with 64-bit row ids (SQLite and PostgreSQL)."""

import rapport_profile.tables  # noqa: F401  (tables on the metadata)
from rapport_events.testing.migrations import MigrationTests
from rapport_profile.main import MIGRATIONS


class TestProfileMigrations(MigrationTests):
    migrations = MIGRATIONS
    version_table = "alembic_version_profile"
    previous_head = "profile_0003_erasure_subjects"
    bigint_head = "profile_0004_bigint_row_ids"
    table_prefixes = ("profile_",)
