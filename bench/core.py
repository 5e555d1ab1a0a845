"""What every case shares: sizes, results, the broker and databases it starts, bounded waits."""

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Self

import asyncpg

from rapport_events.kafka import ensure_topics
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import TansuBroker

Status = Literal["PASS", "FAIL", "SKIP", "INFO", "ERROR"]
POSTGRES_ADMIN_URL = os.environ.get(
    "RAPPORT_BENCH_POSTGRES_URL",
    os.environ.get("RAPPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


@dataclass(frozen=True)
class Sizes:
    """How much work each case does: `quick()` or `full()`, adjusted by env and flags."""

    messages: int = 50_000  # raw produce/consume baseline, per message size
    relay_events: int = 20_000  # outbox rows the relay publishes
    consumer_events: int = 5_000  # events the consumer runner applies
    requests: int = 3_000  # measured HTTP requests per app (a third of it at half load)
    concurrency: int = 16  # HTTP requests in flight
    http_seconds: float = 10.0  # length of one wrk run of the read path
    e2e_customers: int = 600  # customers created at half saturation
    saturation_customers: int = 400  # customers created as fast as possible to find saturation
    ingest_events: int = 20_000  # tracking calls posted to /v1/batch
    revocations: int = 100  # partner_sharing consents revoked, one after another
    replay_events: int = 100_000  # events replayed into a fresh campaign projection
    warmup: int = 500  # warm-up messages / requests before measuring
    repeats: int = 3  # repetitions of the cheap baselines (median taken)
    max_seconds: float = 120.0  # upper bound of any one measuring loop

    @classmethod
    def quick(cls) -> Self:
        return cls(
            messages=5_000,
            relay_events=2_000,
            consumer_events=2_000,
            requests=400,
            http_seconds=4.0,
            e2e_customers=80,
            saturation_customers=80,
            ingest_events=2_000,
            revocations=20,
            replay_events=5_000,
            warmup=100,
            repeats=3,
            max_seconds=30.0,
        )

    @classmethod
    def full(cls) -> Self:
        return cls()

    def with_env(self, environ: dict[str, str] | None = None) -> Self:
        """Override any size from `BENCH_<NAME>` (e.g. BENCH_RELAY_EVENTS=5000)."""
        environ = dict(os.environ if environ is None else environ)
        changes: dict[str, Any] = {}
        for spec in fields(self):
            raw = environ.get(f"BENCH_{spec.name.upper()}")
            if raw:
                floats = ("max_seconds", "http_seconds")
                changes[spec.name] = float(raw) if spec.name in floats else int(raw)
        return replace(self, **changes)

    def with_overrides(self, **values: Any) -> Self:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


@dataclass
class Result:
    """One row of the report: a value, the baseline it is compared with, and the verdict."""

    case: str
    metric: str  # unit of value and baseline: "events/s", "req/s", "ms p99", ...
    value: float | None = None
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    status: Status = "INFO"
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def ratio_at_least(
    case: str,
    metric: str,
    value: float,
    baseline: float,
    minimum: float,
    *,
    baseline_name: str,
    notes: str = "",
    details: dict[str, Any] | None = None,
) -> Result:
    """A throughput compared with its baseline: PASS when value/baseline >= minimum."""
    result = Result(
        case,
        metric,
        value,
        baseline,
        baseline_name,
        target=f"≥ {minimum:g}×",
        notes=notes,
        details=details or {},
    )
    result.status = "PASS" if (result.ratio or 0.0) >= minimum else "FAIL"
    return result


def value_at_most(
    case: str,
    metric: str,
    value: float,
    baseline: float | None,
    maximum: float,
    *,
    baseline_name: str,
    notes: str = "",
    details: dict[str, Any] | None = None,
) -> Result:
    """A latency with an absolute bound; the baseline is shown for scale only."""
    return _absolute(
        case,
        metric,
        value,
        baseline,
        baseline_name,
        f"≤ {maximum:g}",
        value <= maximum,
        notes,
        details,
    )


def value_at_least(
    case: str,
    metric: str,
    value: float,
    baseline: float | None,
    minimum: float,
    *,
    baseline_name: str,
    notes: str = "",
    details: dict[str, Any] | None = None,
) -> Result:
    """A throughput with an absolute floor; the baseline is shown for scale only."""
    return _absolute(
        case,
        metric,
        value,
        baseline,
        baseline_name,
        f"≥ {minimum:g} {metric}",
        value >= minimum,
        notes,
        details,
    )


def _absolute(
    case: str,
    metric: str,
    value: float,
    baseline: float | None,
    baseline_name: str,
    target: str,
    passed: bool,
    notes: str,
    details: dict[str, Any] | None,
) -> Result:
    return Result(
        case,
        metric,
        value,
        baseline,
        baseline_name,
        target=target,
        status="PASS" if passed else "FAIL",
        notes=notes,
        details=details or {},
    )


def skipped(case: str, reason: str) -> Result:
    return Result(case, "", status="SKIP", notes=reason)


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    """Median and 99th percentile (statistics.quantiles, inclusive)."""
    if len(samples) < 2:
        only = samples[0] if samples else float("nan")
        return only, only
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.005,
) -> float:
    """Poll `check` until true; returns the perf_counter at which it was; raises after timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        now = time.perf_counter()
        if outcome:
            return now
        if now > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        await asyncio.sleep(interval)


def new_topic(label: str) -> str:
    return f"rapport.bench-{label}-{uuid.uuid4().hex[:8]}"


class Context:
    """Starts what the cases need on first use and stops all of it at the end.

    A Tansu broker on a free loopback port with memory storage, SQLite files in
    a scratch folder, and fresh PostgreSQL databases that are dropped afterwards
    (none when PostgreSQL is unreachable or `use_postgres` is off).
    """

    def __init__(
        self,
        sizes: Sizes,
        *,
        workdir: Path | None = None,
        use_postgres: bool = True,
        partitions: int = 3,
        log: Callable[[str], None] = print,
    ) -> None:
        self.sizes = sizes
        self.partitions = partitions
        self.log = log
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="rapport-bench-"))
        self._use_postgres = use_postgres
        self._postgres: bool | None = None
        self._databases: list[str] = []
        self._broker: TansuBroker | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def broker(self) -> TansuBroker:
        if self._broker is None:
            self._broker = TansuBroker(log_path=self.workdir / "tansu.log").start()
        return self._broker

    def kafka_settings(self, label: str, **overrides: Any) -> KafkaSettings:
        """Settings on a fresh topic of this run, with the short group timings Tansu wants."""
        values: dict[str, Any] = {
            "bootstrap_servers": self.broker.bootstrap_servers,
            "topic": new_topic(label),
            "partitions": self.partitions,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 300,
            "send_timeout_s": 10.0,
            "relay_max_backoff_s": 1.0,
        }
        values.update(overrides)
        return KafkaSettings(**values)

    async def topic(self, label: str, **overrides: Any) -> KafkaSettings:
        """kafka_settings() with its topic created."""
        settings = self.kafka_settings(label, **overrides)
        await ensure_topics(settings, [settings.topic])
        return settings

    def kafka_env(self, settings: KafkaSettings) -> dict[str, str]:
        """The same settings as environment variables, for service processes."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "KAFKA_TOPIC": settings.topic,
            "KAFKA_PARTITIONS": str(settings.partitions),
            "KAFKA_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
            "KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
            # Spans are made as in production, but not written anywhere.
            "RAPPORT_TRACE_DIR": "",
        }

    async def postgres_available(self) -> bool:
        if not self._use_postgres:
            return False
        if self._postgres is None:
            try:
                connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                self._postgres = False
            else:
                await connection.close()
                self._postgres = True
        return self._postgres

    async def database_kinds(self) -> list[str]:
        return ["sqlite", "postgresql"] if await self.postgres_available() else ["sqlite"]

    async def database(self, kind: str, label: str) -> str:
        """An empty database: a SQLite file in the scratch folder or a fresh PostgreSQL one."""
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{label}-{uuid.uuid4().hex[:6]}.db'}"
        name = f"rapport_bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self._databases.append(name)
        return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    async def close(self) -> None:
        for name in self._databases:
            try:
                admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await admin.close()
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                self.log(f"could not drop database {name}: {error}")
        self._databases = []
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
