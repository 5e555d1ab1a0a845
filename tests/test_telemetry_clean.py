"""Telemetry an operator can use: no trace per idle poll, and every metric explains itself."""

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import wait_until_ready
from rapport_events.testing.stack import DEV_TOKEN

SQL_SCOPE = "opentelemetry.instrumentation.sqlalchemy"
IDLE_S = 3.0


@dataclass(frozen=True)
class ServiceCase:
    name: str
    build: Callable[[str, KafkaSettings], FastAPI]
    reading_route: str  # an authenticated route that queries the database


def _profile(url: str, kafka: KafkaSettings) -> FastAPI:
    from rapport_profile.main import create_app
    from rapport_profile.settings import Settings

    return create_app(Settings(database_url=url, kafka=kafka))


def _campaign(url: str, kafka: KafkaSettings) -> FastAPI:
    from rapport_campaign.main import create_app
    from rapport_campaign.settings import Settings

    # The sender and the scheduler poll several times during the idle period.
    return create_app(Settings(database_url=url, kafka=kafka, worker_interval_s=0.2))


def _support(url: str, kafka: KafkaSettings) -> FastAPI:
    from rapport_support.main import create_app
    from rapport_support.settings import Settings

    return create_app(
        Settings(database_url=url, kafka=kafka, reply_poll_interval_s=0.2, sla_check_interval_s=0.5)
    )


def _partner_share(url: str, kafka: KafkaSettings) -> FastAPI:
    from rapport_partner_share.main import create_app
    from rapport_partner_share.settings import Settings

    return create_app(Settings(database_url=url, kafka=kafka, worker_poll_interval_s=0.2))


def _sales(url: str, kafka: KafkaSettings) -> FastAPI:
    from rapport_sales.main import create_app
    from rapport_sales.settings import Settings

    return create_app(Settings(database_url=url, kafka=kafka))


SERVICES = [
    ServiceCase("profile", _profile, "/customers?limit=1"),
    ServiceCase("campaign", _campaign, "/segments"),
    ServiceCase("support", _support, "/tickets"),
    ServiceCase("partner-share", _partner_share, "/partners"),
    ServiceCase("sales", _sales, "/accounts"),
]


@dataclass
class Observed:
    spans: list[ReadableSpan]
    metrics_text: str


@pytest.fixture(params=SERVICES, ids=[case.name for case in SERVICES])
async def observed(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    span_exporter: InMemorySpanExporter,
) -> AsyncIterator[Observed]:
    """One service from start-up through an idle spell, probed as Kubernetes and make run do."""
    case: ServiceCase = request.param
    span_exporter.clear()
    app = case.build(f"sqlite:///{tmp_path / 'service.db'}", kafka_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        await wait_until_ready(app)
        deadline = asyncio.get_running_loop().time() + IDLE_S
        while asyncio.get_running_loop().time() < deadline:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            await asyncio.sleep(0.25)
        reply = await client.get(
            case.reading_route, headers={"Authorization": f"Bearer {DEV_TOKEN}"}
        )
        assert reply.status_code == 200, reply.text
        metrics_text = (await client.get("/metrics")).text
    yield Observed(list(span_exporter.get_finished_spans()), metrics_text)


def _is_sql(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == SQL_SCOPE


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+\S+(\s+\d+)?$")
FAMILY_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


def families(text: str) -> dict[str, dict[str, Any]]:
    """Each metric family of a Prometheus exposition: its HELP, its TYPE, its sample names."""
    found: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            found.setdefault(name, {"samples": []})["help"] = help_text.strip()
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            found.setdefault(name, {"samples": []})["type"] = kind.strip()
        elif line and not line.startswith("#"):
            match = METRIC_LINE.match(line)
            assert match, f"not a sample line: {line!r}"
            sample = match.group(1)
            family = next(
                (sample[: -len(s)] for s in FAMILY_SUFFIXES if sample.endswith(s)), sample
            )
            owner = sample if sample in found else family
            found.setdefault(owner, {"samples": []})["samples"].append(sample)
    return found


def check_exposition(text: str) -> None:
    """Every family has HELP text and a TYPE; promtool agrees where it is installed."""
    found = families(text)
    assert "rapport_outbox_backlog" in found
    assert "http_server_request_duration_seconds" in found
    assert "db_client_connections_usage_connections" in found
    for name, family in found.items():
        assert family.get("help"), f"{name} has no HELP text"
        assert family.get("type") in ("counter", "gauge", "histogram", "summary", "untyped"), (
            f"{name} has no TYPE"
        )
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


class TestIdleService:
    async def test_no_parentless_sql_trace_and_every_metric_explained(
        self, observed: Observed
    ) -> None:
        sql = [span for span in observed.spans if _is_sql(span)]
        roots = [span for span in sql if span.parent is None]
        assert not roots, "SQL statements traced outside any span: " + "; ".join(
            f"{span.name}: {str((span.attributes or {}).get('db.statement', ''))[:80]}"
            for span in roots[:10]
        )
        # The statements of a real request are still traced, under its server span.
        assert any(span.parent is not None for span in sql), "no SQL span at all was recorded"
        check_exposition(observed.metrics_text)


def test_families_notices_an_empty_help_line() -> None:
    text = (
        "# HELP good_total Things counted\n# TYPE good_total counter\ngood_total 1.0\n"
        "# HELP bare_connections \n# TYPE bare_connections gauge\nbare_connections 2.0\n"
    )
    found = families(text)
    assert found["good_total"]["help"] == "Things counted"
    assert found["bare_connections"]["help"] == ""
