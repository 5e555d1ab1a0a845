"""Pytest fixtures: a real broker, and every database test on SQLite and PostgreSQL.

PostgreSQL comes from RAPPORT_TEST_POSTGRES_URL (default the local server on
127.0.0.1:5432). When it is unreachable its tests are skipped, unless
RAPPORT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

import asyncio
import contextlib
import os
import queue
import socket
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import asyncpg
import pytest

from rapport_events.db import create_engine
from rapport_events.migrations import upgrade
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

POSTGRES_ADMIN_URL = os.environ.get(
    "RAPPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_KINDS = ("sqlite", "postgresql")
DatabaseFactory = Callable[..., Awaitable[str]]
Migrations = tuple[str, str]  # a migrations folder and its version table

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
    """Settings on a topic (and data key topic) of its own, with the short group timeouts
    Tansu wants."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "topic": f"rapport.test-{suffix}",
        "keys_topic": f"rapport.customer-keys-test-{suffix}",
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
    """Kafka settings pointing at the session broker, on a fresh topic.

    Sent outbox rows are kept (marked sent) rather than deleted, so a service's tests can
    read the events a request wrote after the relay has published them.
    """
    return test_kafka_settings(kafka_broker.bootstrap_servers, outbox_retention_s=3600.0)


async def _create_postgres_database(name: str, template: str | None = None) -> str:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        copy_of = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
        # A commit need not wait for the WAL to reach the disk: the tests kill clients,
        # never the server, and the wait was most of a small transaction's time.
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
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


class _Dropper:
    """Drops the tests' PostgreSQL databases in a thread of its own.

    A DROP DATABASE waits for a checkpoint (0.1-1.5 s here); done inline it was a large
    part of every PostgreSQL test's teardown. The session waits for the last drops.
    """

    def __init__(self) -> None:
        self._names: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []

    def drop(self, name: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="drop-test-databases")
            self._thread.daemon = True
            self._thread.start()
        self._names.put(name)

    def finish(self, timeout: float = 120.0) -> None:
        if self._thread is None:
            return
        self._names.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                asyncio.run(_drop_postgres_database(name))
            except Exception as error:  # a database left behind costs disk, not a result
                self.failures.append(f"{name}: {error!r}")


_DROPPER = _Dropper()


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases_at_the_end() -> Iterator[None]:
    yield
    _TEMPLATES.drop_all()
    _DROPPER.finish()


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
    """Makes empty databases of one kind; the test runs once on SQLite, once on PostgreSQL.

    `make(label, migrated=(folder, version table))` gives a database already migrated
    with those migrations: on PostgreSQL a copy of a template migrated once per session
    (a service's migrations cost 0.5-0.8 s of DDL there, and most tests start an app).
    """
    async with _databases(request.param, tmp_path) as make:
        yield make


@pytest.fixture(scope="module", params=DATABASE_KINDS)
async def module_database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DatabaseFactory]:
    """As `database_factory`, for what a module's tests share (services started as
    processes once for the module rather than for each test)."""
    async with _databases(request.param, tmp_path_factory.mktemp("databases")) as make:
        yield make


@contextlib.asynccontextmanager
async def _databases(kind: str, folder: Path) -> AsyncIterator[DatabaseFactory]:
    created: list[str] = []
    if kind == "postgresql" and not await _postgres_reachable():
        message = f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}"
        if _postgres_required():
            pytest.fail(message + " (RAPPORT_REQUIRE_POSTGRES is set)")
        pytest.skip(message)

    async def make(label: str, migrated: Migrations | None = None) -> str:
        if kind == "sqlite":
            return f"sqlite:///{folder / (label + '.db')}"
        name = f"rapport_t_{label.replace('-', '_')}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        template = await _TEMPLATES.of(migrated) if migrated else None
        return await _create_postgres_database(name, template)

    try:
        yield make
    finally:
        for name in created:
            _DROPPER.drop(name)


class _Templates:
    """PostgreSQL databases migrated once per session, copied by CREATE DATABASE … TEMPLATE."""

    def __init__(self) -> None:
        self._names: dict[Migrations, str] = {}

    async def of(self, migrations: Migrations) -> str:
        if migrations not in self._names:
            folder, version_table = migrations
            name = f"rapport_template_{version_table}_{uuid.uuid4().hex[:8]}"
            url = await _create_postgres_database(name)
            engine = create_engine(url)
            try:
                await upgrade(engine, folder, version_table=version_table)
            finally:
                await engine.dispose()  # a template must have no connection when copied
            self._names[migrations] = name
        return self._names[migrations]

    def drop_all(self) -> None:
        for name in self._names.values():
            _DROPPER.drop(name)
        self._names.clear()


_TEMPLATES = _Templates()


@pytest.fixture
def database_template() -> Migrations | None:
    """The migrations `database_url` comes with; a service's tests override it with
    theirs. None: an empty database."""
    return None


@pytest.fixture
async def database_url(
    database_factory: DatabaseFactory, database_template: Migrations | None
) -> str:
    """One database, SQLite or PostgreSQL: empty, or migrated as `database_template` says
    (the service migrates it again at start, which then does nothing)."""
    return await database_factory("main", migrated=database_template)


# Tests that start processes of their own (the services, a broker, a browser) take both
# cores of a small machine: `make test` runs them after the others, in one process; when
# they do run under pytest-xdist they share one group, so one runs at a time.
PROCESSES_GROUP = "processes"


# A test that needs none of these (directly or through its fixtures) and none of the slow
# marks is a unit test: `make test-unit` runs those alone, and `unit_guard` holds them to it.
OUTSIDE_UNIT_FIXTURES = frozenset(
    {"database_factory", "module_database_factory", "database_url", "kafka_broker"}
)
OUTSIDE_UNIT_MARKS = ("processes", "e2e", "faults", "slow", "integration")


def is_unit(item: pytest.Item) -> bool:
    """No database, no broker, no process of its own: logic alone, with in-memory fakes."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & OUTSIDE_UNIT_FIXTURES:
        return False
    return not any(item.get_closest_marker(mark) for mark in OUTSIDE_UNIT_MARKS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("processes") is not None:
            item.add_marker(pytest.mark.xdist_group(PROCESSES_GROUP))
        if is_unit(item):
            item.add_marker(pytest.mark.unit)


class OutsideUnitLayer(RuntimeError):
    """A unit test reached for a database or the network."""


@pytest.fixture(autouse=True)
def unit_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that opens a database or a network connection fails, saying so: the
    layer stays fast and needs nothing running (an ASGI app in process is fine)."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise OutsideUnitLayer(
            f"{request.node.nodeid} is a unit test (no database or broker fixture) but "
            "opened a database or network connection: use a fake, or mark it "
            "@pytest.mark.integration"
        )

    monkeypatch.setattr(sqlite3, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)


@pytest.fixture(scope="session")
def span_exporter() -> Iterator["InMemorySpanExporter"]:
    """Every span finished in this process, kept in memory (clear it, or pick by trace id).

    The tracer provider is global and set once: the SDK provider a service's
    `configure_tracing` installed is reused, else one is installed here.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rapport_events.tracing import configure_tracing

    configure_tracing("rapport-tests")
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip(f"tracing is not the SDK's here: {provider!r}")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
