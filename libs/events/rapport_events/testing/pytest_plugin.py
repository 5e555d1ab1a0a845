"""Pytest fixtures: a real broker, and every database test on SQLite and PostgreSQL.

PostgreSQL comes from RAPPORT_TEST_POSTGRES_URL (default the local server on
127.0.0.1:5432). When it is unreachable its tests are skipped, unless
RAPPORT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker

POSTGRES_ADMIN_URL = os.environ.get(
    "RAPPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_KINDS = ("sqlite", "postgresql")
DatabaseFactory = Callable[[str], Awaitable[str]]

# The services run as production unless told otherwise, and refuse the published
# development secrets there; the tests use those secrets, and so do the service
# processes they start (which inherit this). Tests of production pass it explicitly.
os.environ["RAPPORT_ENV"] = "development"


def _postgres_required() -> bool:
    return os.environ.get("RAPPORT_REQUIRE_POSTGRES", "") in ("1", "true", "yes")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One real Kafka-protocol broker (Tansu, memory storage) for the test session."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = TansuBroker(log_path=log_path).start()
    yield broker
    broker.stop()


def test_kafka_settings(bootstrap_servers: str, **overrides: object) -> KafkaSettings:
    """Settings on a topic of its own, with the short group timeouts Tansu wants."""
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "topic": f"rapport.test-{uuid.uuid4().hex[:10]}",
        "partitions": 3,
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 300,
        "send_timeout_s": 5.0,
        "consumer_retry_backoff_s": 0.05,
        "relay_max_backoff_s": 1.0,
        "relay_poll_interval_s": 0.02,
    }
    values.update(overrides)
    return KafkaSettings(**values)  # type: ignore[arg-type]


test_kafka_settings.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def kafka_settings(kafka_broker: TansuBroker) -> KafkaSettings:
    """Kafka settings pointing at the session broker, on a fresh topic."""
    return test_kafka_settings(kafka_broker.bootstrap_servers)


async def _create_postgres_database(name: str) -> str:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


@pytest.fixture(params=DATABASE_KINDS)
async def database_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DatabaseFactory]:
    """Makes empty databases of one kind; the test runs once on SQLite, once on PostgreSQL."""
    kind = request.param
    created: list[str] = []
    if kind == "postgresql" and not await _postgres_reachable():
        message = f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}"
        if _postgres_required():
            pytest.fail(message + " (RAPPORT_REQUIRE_POSTGRES is set)")
        pytest.skip(message)

    async def make(label: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / (label + '.db')}"
        name = f"rapport_t_{label.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return await _create_postgres_database(name)

    yield make
    for name in created:
        await _drop_postgres_database(name)


@pytest.fixture
async def database_url(database_factory: DatabaseFactory) -> str:
    """One empty database, SQLite or PostgreSQL."""
    return await database_factory("main")
