"""Metrics at /metrics, JSON logs with trace ids, messaging spans, and the span-tree tool.

The tracer and meter providers are process-wide and set once: these tests reuse
whatever SDK providers an earlier test installed, so they never assert which
service a process-wide resource names, only what every span and series carries.
"""

import asyncio
import importlib.util
import io
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from rapport_campaign.main import create_app as create_campaign_app
from rapport_campaign.settings import Settings as CampaignSettings
from rapport_events import observability, tracing
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import drain_outbox, until, wait_until_ready
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.tracing import JsonLinesSpanExporter, service_resource
from rapport_profile.main import create_app as create_profile_app
from rapport_profile.settings import Settings as ProfileSettings

TOKEN = "observability-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parent.parent
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Prometheus exposition text as {series name: [(labels, value), ...]}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the series `name` whose labels include `labels`."""
    return sum(
        value
        for series_labels, value in samples.get(name, [])
        if all(series_labels.get(key) == wanted for key, wanted in labels.items())
    )


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


def customer(email: str) -> dict[str, str]:
    return {"email": email, "first_name": "Grace", "last_name": "Hopper"}


@pytest.fixture
async def profile(database_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[FastAPI]:
    app = create_profile_app(
        ProfileSettings(database_url=database_url, api_token=TOKEN, kafka=kafka_settings)
    )
    async with app.router.lifespan_context(app):
        await wait_until_ready(app)
        yield app
        await drain_outbox(app)


@pytest.fixture
async def client(profile: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=profile)
    async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
        yield client


class TestReadiness:
    """/readyz tells the truth about the event plumbing, with the reason in its body."""

    async def test_a_relay_that_keeps_crashing_is_503_and_counted(
        self, profile: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert (await client.get("/readyz")).status_code == 200
        relay = profile.state.runtime.relay
        await relay.stop()

        async def crash() -> None:
            raise RecursionError("a bug deep in the relay")

        monkeypatch.setattr(relay, "_loop", crash)
        relay.start()
        deadline = time.monotonic() + 30
        ready = await client.get("/readyz")
        while ready.status_code == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            ready = await client.get("/readyz")

        assert ready.status_code == 503
        reason = ready.json()["checks"]["tasks"]
        assert "outbox-relay: restart" in reason and "RecursionError" in reason, reason
        restarts = await scrape(client)
        assert total(restarts, "rapport_task_restarts_total") >= 1
        monkeypatch.undo()
        await relay.stop()
        relay.start()

    async def test_a_stopped_relay_is_503(
        self, profile: FastAPI, client: httpx.AsyncClient
    ) -> None:
        relay = profile.state.runtime.relay
        await relay.stop()
        try:
            ready = await client.get("/readyz")
        finally:
            relay.start()
        assert ready.status_code == 503
        assert ready.json()["checks"]["tasks"].endswith("outbox-relay: stopped")
        assert (await client.get("/readyz")).status_code == 200


class TestMetricsEndpoint:
    async def test_counts_requests_by_route_and_status(self, client: httpx.AsyncClient) -> None:
        series = "http_server_request_duration_seconds_count"
        route = {"http_route": "/customers", "http_request_method": "POST"}
        before = await scrape(client)

        created = await client.post("/customers", json=customer("count@example.com"), headers=AUTH)
        refused = await client.post("/customers", json={"email": "x"}, headers=AUTH)

        assert (created.status_code, refused.status_code) == (201, 422)
        after = await scrape(client)
        for status in ("201", "422"):
            labels = {**route, "http_response_status_code": status}
            assert total(after, series, **labels) - total(before, series, **labels) == 1
        buckets = [
            labels
            for labels, _ in after["http_server_request_duration_seconds_bucket"]
            if labels.get("http_route") == "/customers"
        ]
        assert buckets and {"le", "service_name"} <= set(buckets[0])

    async def test_needs_no_token_and_is_not_itself_counted(
        self, client: httpx.AsyncClient
    ) -> None:
        await scrape(client)
        samples = await scrape(client)
        routes = {
            labels.get("http_route")
            for labels, _ in samples.get("http_server_request_duration_seconds_count", [])
        }
        assert not routes & {"/metrics", "/healthz", "/readyz"}

    async def test_exports_every_event_metric(self, client: httpx.AsyncClient) -> None:
        samples = await scrape(client)
        for spec in observability.METRICS:
            if spec is observability.CONSUMER_LAG or spec.kind == "histogram":
                continue  # lag exists per assigned partition; profile consumes nothing
            for series in spec.prometheus_series:
                assert series in samples, f"{series} missing from /metrics"
        assert total(samples, "rapport_consumer_dead_lettered_total") == 0

    async def test_outbox_backlog_and_age_while_the_relay_is_stopped(
        self, profile: FastAPI, client: httpx.AsyncClient
    ) -> None:
        relay = profile.state.runtime.relay
        await relay.stop()
        published = total(await scrape(client), "rapport_relay_published_total")
        await client.post("/customers", json=customer("held@example.com"), headers=AUTH)
        await client.post("/customers", json=customer("held2@example.com"), headers=AUTH)
        await asyncio.sleep(0.3)

        held = await scrape(client)

        # Two events, and each new customer's data key record on the key topic.
        assert total(held, "rapport_outbox_backlog") == 2 + 2
        assert total(held, "rapport_outbox_oldest_age_seconds") >= 0.3
        relay.start()
        await drain_outbox(profile)
        drained = await scrape(client)
        assert total(drained, "rapport_outbox_backlog") == 0
        assert total(drained, "rapport_outbox_oldest_age_seconds") == 0
        assert total(drained, "rapport_relay_published_total") - published == 2 + 2


class TestConsumerMetrics:
    async def test_lag_returns_to_zero_once_applied(
        self,
        database_factory: DatabaseFactory,
        kafka_settings: KafkaSettings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        profile = create_profile_app(
            ProfileSettings(
                database_url=await database_factory("profile"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        )
        campaign = create_campaign_app(
            CampaignSettings(
                database_url=await database_factory("campaign"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        )
        async with (
            profile.router.lifespan_context(profile),
            campaign.router.lifespan_context(campaign),
        ):
            await asyncio.wait_for(campaign.state.runtime.connected.wait(), 30)
            p = httpx.AsyncClient(transport=httpx.ASGITransport(app=profile), base_url="http://p")
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=campaign), base_url="http://c")
            async with p, c:
                span_exporter.clear()
                created = await p.post("/customers", json=customer("lag@example.com"), headers=AUTH)
                assert created.status_code == 201
                group = {"messaging_consumer_group_name": "campaign"}

                async def applied() -> bool:
                    return total(await scrape(c), "rapport_consumer_applied_total", **group) >= 1

                await until(applied, timeout=15.0, what="campaign applying customer.registered")

                async def caught_up() -> bool:
                    samples = await scrape(c)
                    lags = [
                        v
                        for lbl, v in samples.get("rapport_consumer_lag", [])
                        if lbl.get("messaging_consumer_group_name") == "campaign"
                    ]
                    return bool(lags) and sum(lags) == 0

                await until(caught_up, timeout=15.0, what="zero lag for the campaign group")
                samples = await scrape(c)
                partitions = {
                    labels["messaging_destination_partition_id"]
                    for labels, _ in samples["rapport_consumer_lag"]
                    if labels.get("messaging_destination_name") == kafka_settings.topic
                }
                assert partitions == {str(n) for n in range(kafka_settings.partitions)}
                await drain_outbox(profile)
            self.check_messaging_spans(span_exporter, kafka_settings.topic)

    @staticmethod
    def check_messaging_spans(exporter: InMemorySpanExporter, topic: str) -> None:
        spans = exporter.get_finished_spans()
        for span in spans:
            assert span.resource.attributes.get("service.name"), span.name
            assert span.resource.attributes.get("service.version"), span.name
        sends = [s for s in spans if s.name == f"send {topic}"]
        processes = [s for s in spans if s.name == f"process {topic}"]
        assert sends and processes
        send = sends[0]
        assert send.kind is SpanKind.PRODUCER
        assert send.attributes is not None
        assert send.attributes["messaging.system"] == "kafka"
        assert send.attributes["messaging.operation.type"] == "send"
        assert send.attributes["messaging.destination.name"] == topic
        process = next(
            s
            for s in processes
            if s.context.trace_id == send.context.trace_id
            and s.attributes
            and s.attributes.get("messaging.consumer.group.name") == "campaign"
        )
        assert process.kind is SpanKind.CONSUMER
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        assert [link.context.span_id for link in process.links] == [send.context.span_id]
        assert process.attributes is not None
        assert process.attributes["messaging.operation.type"] == "process"
        assert process.attributes["messaging.consumer.group.name"] == "campaign"
        assert isinstance(process.attributes["messaging.destination.partition.id"], str)
        server = next(s for s in spans if s.name == "POST /customers")
        assert server.kind is SpanKind.SERVER
        assert send.parent is not None and send.context.trace_id == server.context.trace_id


class FakeKafkaConsumer:
    """What consumer_lag reads from an AIOKafkaConsumer."""

    def __init__(self, offsets: dict[int, tuple[int | None, int, int | None]]) -> None:
        self.offsets = {TopicPartition("t", p): values for p, values in offsets.items()}

    def assignment(self) -> set[TopicPartition]:
        return set(self.offsets)

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.offsets[partition][0]

    async def position(self, partition: TopicPartition) -> int:
        return self.offsets[partition][1]

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.offsets[partition][2]


class FakeRuntime:
    def __init__(self, consumer: FakeKafkaConsumer | None) -> None:
        self.consumer = type("Runner", (), {"kafka_consumer": consumer})()


class TestConsumerLag:
    async def test_is_the_furthest_known_offset_minus_the_committed_one(self) -> None:
        consumer = FakeKafkaConsumer(
            {
                0: (10, 12, 20),  # fetched up to 12, the broker says 20 exist
                1: (5, 9, None),  # no fetch response yet: the position is all it knows
                2: (None, 3, 3),  # nothing committed yet
                3: (7, 7, 4),  # a highwater behind the position is ignored
            }
        )

        lag = await observability.consumer_lag(FakeRuntime(consumer))  # type: ignore[arg-type]

        assert lag == {("t", 0): 10, ("t", 1): 4, ("t", 2): 3, ("t", 3): 0}

    async def test_is_empty_without_a_consumer(self) -> None:
        assert await observability.consumer_lag(FakeRuntime(None)) == {}  # type: ignore[arg-type]


class TestMetricNames:
    def test_prometheus_names_follow_the_exporter(self) -> None:
        assert observability.HTTP_SERVER_REQUEST_DURATION.prometheus_series == (
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_sum",
        )
        assert observability.OUTBOX_OLDEST_AGE.prometheus_series == (
            "rapport_outbox_oldest_age_seconds",
        )
        assert observability.CONSUMER_DEAD_LETTERED.prometheus_series == (
            "rapport_consumer_dead_lettered_total",
        )

    @pytest.mark.parametrize(
        ("url", "excluded"),
        [
            ("http://profile:8001/metrics", True),
            ("http://profile/healthz", True),
            ("https://profile/readyz", True),
            ("http://profile/customers/abc/metrics", False),
            ("http://profile/customers", False),
        ],
    )
    def test_probes_and_scrapes_are_not_traced(self, url: str, excluded: bool) -> None:
        assert bool(re.search(observability.EXCLUDED_URLS, url)) is excluded

    def test_resource_names_service_and_version(self) -> None:
        attributes = service_resource("profile").attributes
        assert attributes["service.name"] == "profile"
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", str(attributes["service.version"]))


class TestJsonLogs:
    def test_a_line_logged_in_a_span_carries_its_trace_id(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        observability.configure_logging("profile")
        tracer = TracerProvider().get_tracer("observability-tests")
        logger = logging.getLogger("rapport.tests.logs")
        capsys.readouterr()

        with tracer.start_as_current_span("work") as span:
            logger.warning("customer %s imported", "c-1", extra={"customer_id": "c-1"})
        logger.warning("outside any span")

        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
        inside = next(line for line in lines if line["message"] == "customer c-1 imported")
        context = span.get_span_context()
        assert inside["trace_id"] == format(context.trace_id, "032x")
        assert inside["span_id"] == format(context.span_id, "016x")
        assert inside["level"] == "WARNING"
        assert inside["logger"] == "rapport.tests.logs"
        assert inside["customer_id"] == "c-1"
        assert inside["timestamp"].endswith("Z")
        outside = next(line for line in lines if line["message"] == "outside any span")
        assert "trace_id" not in outside

    def test_exceptions_are_one_json_line(self) -> None:
        formatter = observability.JsonFormatter("profile")
        try:
            raise ValueError("bad input")
        except ValueError:
            record = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )
        line = formatter.format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["service"] == "profile"
        assert "ValueError: bad input" in entry["exception"]


TREE_LINE = re.compile(
    r"^\s*[+-][\d.]+ms\s+(?P<duration>[\d.]+)ms  (?P<kind>\S+)\s+(?P<service>\S+)\s+"
    r"(?P<name>\S.*?)(?:  \(.*\))?$"
)


def parse_tree(lines: list[str]) -> dict[str, tuple[str, str, int, float]]:
    """{span name: (kind, service, indent, duration ms)} from the tool's output."""
    names_at = lines[1].index("span")  # the header: depth-0 names start under "span"
    tree = {}
    for line in lines[2:]:
        row = TREE_LINE.match(line)
        assert row, line
        tail = line[names_at:]
        indent = len(tail) - len(tail.lstrip(" "))
        tree[row["name"]] = (row["kind"], row["service"], indent, float(row["duration"]))
    return tree


def load_traces_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rapport_traces_tool", REPO / "tools/traces.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_trace(directory: Path, **rotation: int) -> str:
    """A request on `front` that publishes, consumed by `back`, as make run writes it."""
    providers = {}
    for service in ("front", "back"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = JsonLinesSpanExporter(directory / f"{service}.jsonl", **rotation)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers[service] = provider
    front = providers["front"].get_tracer("t")
    back = providers["back"].get_tracer("t")
    with front.start_as_current_span("POST /customers", kind=SpanKind.SERVER) as server:
        with front.start_as_current_span("INSERT db", kind=SpanKind.CLIENT):
            time.sleep(0.002)
        with front.start_as_current_span("send topic", kind=SpanKind.PRODUCER) as send:
            pass
    parent = trace.set_span_in_context(send)
    with back.start_as_current_span(
        "process topic",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[trace.Link(send.get_span_context())],
    ):
        pass
    with back.start_as_current_span("lonely poll"):
        pass
    return format(server.get_span_context().trace_id, "032x")


class TestTracesTool:
    def test_prints_the_latest_trace_as_a_tree(self, tmp_path: Path) -> None:
        tool = load_traces_tool()
        trace_id = write_trace(tmp_path)
        out = io.StringIO()

        assert tool.main(["--dir", str(tmp_path)], out=out) == 0

        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"trace {trace_id}")
        assert "4 spans" in lines[0] and "services: back, front" in lines[0]
        tree = parse_tree(lines)
        assert list(tree)[0] == "POST /customers"
        assert {name: row[:3] for name, row in tree.items()} == {
            "POST /customers": ("SERVER", "front", 0),
            "INSERT db": ("CLIENT", "front", 2),
            "send topic": ("PRODUCER", "front", 2),
            "process topic": ("CONSUMER", "back", 4),
        }
        assert tree["INSERT db"][3] >= 2.0  # it slept 2 ms

    def test_picks_a_trace_by_id_prefix_and_skips_single_spans(self, tmp_path: Path) -> None:
        tool = load_traces_tool()
        trace_id = write_trace(tmp_path)
        out = io.StringIO()

        assert tool.main(["--dir", str(tmp_path), "--trace", "0x" + trace_id[:8]], out=out) == 0
        assert out.getvalue().startswith(f"trace {trace_id}")
        out = io.StringIO()
        assert tool.main(["--dir", str(tmp_path), "--last", "5"], out=out) == 0
        assert out.getvalue().count("\ntrace ") + 1 == 1
        out = io.StringIO()
        assert tool.main(["--dir", str(tmp_path), "--last", "5", "--all"], out=out) == 0
        assert "lonely poll" in out.getvalue()

    def test_reads_a_trace_split_across_rotated_files(self, tmp_path: Path) -> None:
        tool = load_traces_tool()
        trace_id = write_trace(tmp_path, max_bytes=1, files=10)  # one span per file
        assert (tmp_path / "front.jsonl.2").exists() and (tmp_path / "back.jsonl.1").exists()
        out = io.StringIO()

        assert tool.main(["--dir", str(tmp_path)], out=out) == 0

        lines = out.getvalue().splitlines()
        assert lines[0].startswith(f"trace {trace_id}") and "4 spans" in lines[0]
        assert set(parse_tree(lines)) == {
            "POST /customers",
            "INSERT db",
            "send topic",
            "process topic",
        }


class TestSpanFileRotation:
    """Span files past their size cap are rotated, and only so many are kept."""

    def test_the_files_of_a_service_stay_within_their_cap(self, tmp_path: Path) -> None:
        max_bytes, files = 4000, 3
        provider = TracerProvider(resource=Resource.create({"service.name": "busy"}))
        exporter = JsonLinesSpanExporter(tmp_path / "busy.jsonl", max_bytes=max_bytes, files=files)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")

        for number in range(300):
            with tracer.start_as_current_span(f"span {number}"):
                pass

        kept = sorted(path.name for path in tmp_path.iterdir())
        assert kept == ["busy.jsonl", "busy.jsonl.1", "busy.jsonl.2"]
        sizes = [path.stat().st_size for path in tmp_path.iterdir()]
        assert all(0 < size <= max_bytes for size in sizes)
        assert sum(sizes) <= files * max_bytes
        newest = (tmp_path / "busy.jsonl").read_text().splitlines()[-1]
        oldest = (tmp_path / "busy.jsonl.2").read_text().splitlines()[0]
        assert json.loads(newest)["name"] == "span 299"
        assert int(json.loads(oldest)["name"].split()[1]) > 200  # the first spans are gone

    def test_one_file_kept_means_the_file_starts_over(self, tmp_path: Path) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": "one"}))
        exporter = JsonLinesSpanExporter(tmp_path / "one.jsonl", max_bytes=1, files=1)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for name in ("first", "second"):
            with provider.get_tracer("t").start_as_current_span(name):
                pass

        assert [path.name for path in tmp_path.iterdir()] == ["one.jsonl"]
        assert [json.loads(line)["name"] for line in (tmp_path / "one.jsonl").open()] == ["second"]

    def test_the_caps_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RAPPORT_TRACE_FILE_MAX_MB", "0.5")
        monkeypatch.setenv("RAPPORT_TRACE_FILES", "2")
        assert tracing._trace_file_settings() == (512 * 1024, 2)
        monkeypatch.delenv("RAPPORT_TRACE_FILE_MAX_MB")
        monkeypatch.delenv("RAPPORT_TRACE_FILES")
        assert tracing._trace_file_settings() == (50 * 1024 * 1024, 5)
