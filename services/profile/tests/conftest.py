"""Profile's tests start from a migrated database (see `database_template`); sessions and an
engine on it."""

from collections.abc import AsyncIterator

import pytest
from profile_testing import migrated
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.db import SessionFactory, create_engine, session_factory
from rapport_events.migrations import upgrade
from rapport_events.testing.pytest_plugin import Migrations
from rapport_profile.main import MIGRATIONS, VERSION_TABLE


@pytest.fixture
def database_template() -> Migrations:
    """`database_url` comes migrated (on PostgreSQL, a copy of a template migrated once)."""
    return (MIGRATIONS, VERSION_TABLE)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    await upgrade(engine, MIGRATIONS, version_table="alembic_version_profile")
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated(database_url)
    yield engine
    await engine.dispose()
