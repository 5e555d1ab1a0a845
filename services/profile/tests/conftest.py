"""Profile's tests start from a migrated database (see `database_template`)."""

import pytest

from rapport_events.testing.pytest_plugin import Migrations
from rapport_profile.main import MIGRATIONS, VERSION_TABLE


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)
