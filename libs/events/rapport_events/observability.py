"""Metrics and JSON logs that every service gets from `rapport_events.http.instrument_app`.

Metrics are OpenTelemetry instruments. `OTEL_METRICS_EXPORTER` picks the readers
(comma-separated): `prometheus` (Rapport's default) serves them at `GET /metrics`
of the service, `otlp` pushes them every `OTEL_METRIC_EXPORT_INTERVAL` ms to
`OTEL_EXPORTER_OTLP_ENDPOINT`, `console` prints them, `none` turns them off;
`OTEL_SDK_DISABLED=true` turns off every signal. `METRICS` below lists what a
service exports and the Prometheus series each becomes.

Consumer lag, per assigned partition, is `max(position, highwater) - committed`:
`committed` is the group's committed offset as the broker stores it, `position`
the consumer's next offset to hand out, and `highwater` the partition's high
watermark carried in the last fetch response. It never asks for end offsets
(ListOffsets), which the dev broker (Tansu) reports wrongly; with Tansu the
highwater of fetch responses may lag behind the log, so there the number is a
lower bound: records the consumer has fetched or been told of but not committed.

Logs: `configure_logging` puts one JSON object per line on stderr, with the
`trace_id` and `span_id` of the span that was current when the line was logged.
`RAPPORT_LOG_FORMAT=text` gives plain lines instead, `RAPPORT_LOG_LEVEL` the level.

Long because `METRICS` lists every instrument with its description and series beside the
readers that export them: what a dashboard may rely on is read in one place.
"""

import asyncio
import contextlib
import json
import logging
import os
import sys
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request, Response
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from sqlalchemy import func
from sqlmodel import col, select

from rapport_events.aio import cancel_and_wait
from rapport_events.base import utcnow
from rapport_events.db import read_transaction
from rapport_events.outbox import OutboxMessage, is_pending
from rapport_events.tracing import configure_tracing, sdk_disabled, service_resource

if TYPE_CHECKING:
    from rapport_events.runtime import EventRuntime

log = logging.getLogger(__name__)

METER_NAME = "rapport_events"
# Probes and the scrape itself are neither traced nor counted as requests. The
# anchored host part keeps `/customers/{id}/metrics` traced.
EXCLUDED_URLS = "://[^/]+/(?:healthz|readyz|metrics)$"
SCRAPE_REFRESH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class MetricSpec:
    """One metric a service exports: its OpenTelemetry name and its Prometheus series."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    unit: str
    description: str

    @property
    def prometheus_name(self) -> str:
        """The name the Prometheus exporter (and the Collector's) gives the metric."""
        from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

        name = sanitize_full_name(self.name)
        unit = map_unit(self.unit)
        if unit and not name.endswith("_" + unit):
            name = f"{name}_{unit}"
        return name

    @property
    def prometheus_series(self) -> tuple[str, ...]:
        """Every series name a query can use."""
        base = self.prometheus_name
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_count", f"{base}_sum")
        return (base,)


HTTP_SERVER_REQUEST_DURATION = MetricSpec(
    "http.server.request.duration",
    "histogram",
    "s",
    "Duration of HTTP server requests, by http.route, http.request.method and "
    "http.response.status_code (from the FastAPI instrumentation)",
)
OUTBOX_BACKLOG = MetricSpec(
    "rapport.outbox.backlog", "gauge", "{message}", "Outbox rows not yet published"
)
OUTBOX_OLDEST_AGE = MetricSpec(
    "rapport.outbox.oldest_age", "gauge", "s", "Age of the oldest unpublished outbox row"
)
OUTBOX_PARKED = MetricSpec(
    "rapport.outbox.parked",
    "gauge",
    "{message}",
    "Outbox rows the broker refused for good, parked until an operator unparks or deletes them",
)
RELAY_PUBLISHED = MetricSpec(
    "rapport.relay.published", "counter", "{message}", "Outbox rows the relay has published"
)
RELAY_FAILURES = MetricSpec(
    "rapport.relay.failures", "counter", "{failure}", "Relay rounds that failed and were retried"
)
RELAY_PARKED = MetricSpec(
    "rapport.relay.parked", "counter", "{message}", "Outbox rows the relay has parked"
)
RELAY_ACTIVE = MetricSpec(
    "rapport.relay.active",
    "gauge",
    "{relay}",
    "1 while this replica's relay publishes the outbox, 0 while it stands by for another",
)
CONSUMER_LAG = MetricSpec(
    "rapport.consumer.lag",
    "gauge",
    "{message}",
    "Records of an assigned partition past the group's committed offset",
)
CONSUMER_APPLIED = MetricSpec(
    "rapport.consumer.applied", "counter", "{event}", "Events the consumer applied"
)
CONSUMER_DUPLICATES = MetricSpec(
    "rapport.consumer.duplicates", "counter", "{event}", "Redelivered events the inbox skipped"
)
CONSUMER_DEAD_LETTERED = MetricSpec(
    "rapport.consumer.dead_lettered",
    "counter",
    "{message}",
    "Messages sent to the service's dead-letter topic",
)
TASK_RESTARTS = MetricSpec(
    "rapport.task.restarts",
    "counter",
    "{restart}",
    "Times a supervised background task (relay, consumer, worker) failed and was restarted",
)
METRICS = (
    HTTP_SERVER_REQUEST_DURATION,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PARKED,
    RELAY_PUBLISHED,
    RELAY_FAILURES,
    RELAY_PARKED,
    RELAY_ACTIVE,
    CONSUMER_LAG,
    CONSUMER_APPLIED,
    CONSUMER_DUPLICATES,
    CONSUMER_DEAD_LETTERED,
    TASK_RESTARTS,
)


def prometheus_series() -> frozenset[str]:
    """Every Prometheus series name a service exports (what dashboards may query)."""
    return frozenset(series for spec in METRICS for series in spec.prometheus_series)


# --- set-up -------------------------------------------------------------------------------


def setup(service_name: str, version: str | None = None) -> None:
    """JSON logs, traces and metrics of one service process; idempotent."""
    configure_logging(service_name)
    configure_tracing(service_name, version)
    configure_metrics(service_name, version)


def _metric_exporters() -> list[str]:
    value = os.environ.get("OTEL_METRICS_EXPORTER", "prometheus")
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def _readers(exporters: list[str]) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    readers: list[MetricReader] = []
    for name in exporters:
        if name == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            # service.name becomes a `service_name` label, as the Collector's
            # resource_to_telemetry_conversion makes it, so one dashboard fits both.
            readers.append(
                PrometheusMetricReader(resource_attribute_filter=lambda key: key == "service.name")
            )
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif name != "none":
            log.warning("unknown OTEL_METRICS_EXPORTER %r ignored", name)
    return readers


def _views() -> list[View]:
    # The HTTP instrumentation also records request and response body sizes: two more
    # histograms per request that nothing here reads. Instruments no view names keep
    # the SDK's default view.
    dropped = ("http.server.request.body.size", "http.server.response.body.size")
    return [View(instrument_name=name, aggregation=DropAggregation()) for name in dropped]


_instruments_registered = False


def configure_metrics(service_name: str, version: str | None = None) -> MeterProvider | None:
    """Install the SDK meter provider once per process; None when the SDK is disabled."""
    global _instruments_registered
    if sdk_disabled():
        return None
    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider):
        provider = current
    else:
        provider = MeterProvider(
            resource=service_resource(service_name, version),
            metric_readers=_readers(_metric_exporters()),
            views=_views(),
        )
        metrics.set_meter_provider(provider)
    if not _instruments_registered:
        _register_instruments(metrics.get_meter(METER_NAME))
        _instruments_registered = True
    return provider


def _pushes_metrics() -> bool:
    return not sdk_disabled() and any(name in ("otlp", "console") for name in _metric_exporters())


# --- what the event runtime reports -------------------------------------------------------


class RuntimeMetrics:
    """Samples one runtime's outbox backlog and consumer lag for the observable gauges.

    Counters are read straight from the relay and the consumer runner. The samples
    need queries, so they are refreshed before each `/metrics` scrape and, when
    metrics are pushed, in the background at half the export interval.
    """

    def __init__(self, runtime: "EventRuntime") -> None:
        self.runtime = runtime
        self.backlog = 0
        self.oldest_age_s = 0.0
        self.parked = 0
        self.lag: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        _LIVE.add(self)
        if _pushes_metrics():
            self._task = asyncio.create_task(
                self._sample_forever(), name=f"{self.runtime.service}-metrics"
            )

    async def stop(self) -> None:
        _LIVE.discard(self)
        await cancel_and_wait(self._task)
        self._task = None

    async def _sample_forever(self) -> None:
        interval_s = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 2000
        while True:
            await self.refresh()
            await asyncio.sleep(max(interval_s, 1.0))

    async def refresh(self) -> None:
        """Query the outbox and the group's committed offsets now; keep old values on failure."""
        async with self._lock:
            # The samples' own queries must not show up as traces.
            with suppress_instrumentation():
                try:
                    self.backlog, self.oldest_age_s = await outbox_backlog(self.runtime)
                except Exception as error:
                    log.debug("outbox backlog unavailable: %s", error)
                try:
                    self.parked = await outbox_parked(self.runtime)
                except Exception as error:
                    log.debug("parked outbox rows unavailable: %s", error)
                try:
                    self.lag = await consumer_lag(self.runtime)
                except Exception as error:
                    log.debug("consumer lag unavailable: %s", error)


_LIVE: "weakref.WeakSet[RuntimeMetrics]" = weakref.WeakSet()


async def refresh_all(timeout_s: float = SCRAPE_REFRESH_TIMEOUT_S) -> None:
    """Refresh the samples of every running runtime of this process, within a bound."""
    samplers = list(_LIVE)
    if not samplers:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(sampler.refresh() for sampler in samplers))


async def outbox_backlog(runtime: "EventRuntime") -> tuple[int, float]:
    """Pending outbox rows and the age in seconds of the oldest; works while the broker is away."""
    async with read_transaction(runtime.sessions) as session:
        result = await session.exec(
            select(func.count(), func.min(OutboxMessage.created_at)).where(is_pending())
        )
        count, oldest = result.one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max((utcnow() - oldest).total_seconds(), 0.0)


async def outbox_parked(runtime: "EventRuntime") -> int:
    """Outbox rows the relay parked (never published, not pending)."""
    async with read_transaction(runtime.sessions) as session:
        result = await session.exec(
            select(func.count()).where(
                col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.parked_at).is_not(None)
            )
        )
        return int(result.one())


async def consumer_lag(runtime: "EventRuntime") -> dict[tuple[str, int], int]:
    """`max(position, highwater) - committed` per assigned partition (see the module doc)."""
    runner = runtime.consumer
    consumer = runner.kafka_consumer if runner is not None else None
    if consumer is None:
        return {}
    lag: dict[tuple[str, int], int] = {}
    for partition in consumer.assignment():
        async with asyncio.timeout(1.0):
            committed = await consumer.committed(partition)
            position = await consumer.position(partition)
        end = max(position, consumer.highwater(partition) or 0)
        # Nothing committed yet: the group starts from the earliest offset.
        lag[(partition.topic, partition.partition)] = max(end - (committed or 0), 0)
    return lag


def _observe(
    read: Callable[[RuntimeMetrics], Iterable[tuple[float, dict[str, Any]]]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, attrs) for sampler in list(_LIVE) for value, attrs in read(sampler)
        ]

    return callback


def _group(sampler: RuntimeMetrics) -> dict[str, Any]:
    return {"messaging.system": "kafka", "messaging.consumer.group.name": sampler.runtime.service}


def _consumer_count(
    attribute: str,
) -> Callable[[RuntimeMetrics], Iterable[tuple[float, dict[str, Any]]]]:
    def read(sampler: RuntimeMetrics) -> Iterable[tuple[float, dict[str, Any]]]:
        # Zero before the consumer runs (or when the service consumes nothing), so an
        # alert on the series never meets an absent one.
        runner = sampler.runtime.consumer
        return [(getattr(runner, attribute, 0), _group(sampler))]

    return read


def _relay_count(
    attribute: str,
) -> Callable[[RuntimeMetrics], Iterable[tuple[float, dict[str, Any]]]]:
    def read(sampler: RuntimeMetrics) -> Iterable[tuple[float, dict[str, Any]]]:
        return [(getattr(sampler.runtime.relay, attribute, 0), {})]

    return read


def _restarts(sampler: RuntimeMetrics) -> Iterable[tuple[float, dict[str, Any]]]:
    return [(task.restarts, {"task": task.name}) for task in sampler.runtime.supervised()]


def _lag(sampler: RuntimeMetrics) -> Iterable[tuple[float, dict[str, Any]]]:
    return [
        (
            lag,
            {
                **_group(sampler),
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
            },
        )
        for (topic, partition), lag in sorted(sampler.lag.items())
    ]


def _register_instruments(meter: metrics.Meter) -> None:
    def gauge(spec: MetricSpec, read: Callable[[RuntimeMetrics], Any]) -> None:
        meter.create_observable_gauge(
            spec.name, [_observe(read)], unit=spec.unit, description=spec.description
        )

    def counter(spec: MetricSpec, read: Callable[[RuntimeMetrics], Any]) -> None:
        meter.create_observable_counter(
            spec.name, [_observe(read)], unit=spec.unit, description=spec.description
        )

    gauge(OUTBOX_BACKLOG, lambda sampler: [(sampler.backlog, {})])
    gauge(OUTBOX_OLDEST_AGE, lambda sampler: [(sampler.oldest_age_s, {})])
    gauge(OUTBOX_PARKED, lambda sampler: [(sampler.parked, {})])
    gauge(RELAY_ACTIVE, lambda sampler: [(int(sampler.runtime.relay_role() == "active"), {})])
    gauge(CONSUMER_LAG, _lag)
    counter(RELAY_PUBLISHED, _relay_count("published"))
    counter(RELAY_FAILURES, _relay_count("failures"))
    counter(RELAY_PARKED, _relay_count("parked"))
    counter(CONSUMER_APPLIED, _consumer_count("applied"))
    counter(CONSUMER_DUPLICATES, _consumer_count("duplicates"))
    counter(CONSUMER_DEAD_LETTERED, _consumer_count("dead_lettered"))
    counter(TASK_RESTARTS, _restarts)


# --- GET /metrics -------------------------------------------------------------------------


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics (unauthenticated, like the probes)."""
    from prometheus_client import REGISTRY
    from prometheus_client.exposition import choose_encoder

    await refresh_all()
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(REGISTRY), media_type=content_type)


def mount_metrics(app: FastAPI) -> None:
    """Serve `GET /metrics` on the app, outside any router that asks for a token."""
    if not any(getattr(route, "path", None) == "/metrics" for route in app.router.routes):
        app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)


# --- logs ---------------------------------------------------------------------------------

# Standard record attributes, and uvicorn's colour copy of the message.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_TRACE_FIELDS = ("trace_id", "span_id", "trace_flags")


def add_trace_context(record: logging.LogRecord) -> bool:
    """Logging filter: the current span's ids on the record (empty outside a span)."""
    if getattr(record, "trace_id", None) is None:
        context = trace.get_current_span().get_span_context()
        valid = context.is_valid
        setattr(record, "trace_id", format(context.trace_id, "032x") if valid else "")  # noqa: B010
        setattr(record, "span_id", format(context.span_id, "016x") if valid else "")  # noqa: B010
        setattr(record, "trace_flags", format(context.trace_flags, "02x") if valid else "")  # noqa: B010
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, service, trace ids, extras."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        add_trace_context(record)
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service_name,
        }
        for field in _TRACE_FIELDS:
            if value := getattr(record, field, ""):
                entry[field] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in _TRACE_FIELDS and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines that still carry the trace id, for a terminal."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)-7s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s "
            "%(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        add_trace_context(record)
        return super().format(record)


class StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def configure_logging(service_name: str) -> logging.Handler:
    """JSON lines on stderr from the root logger (and uvicorn's), with trace context; idempotent."""
    root = logging.getLogger()
    for existing in root.handlers:
        if isinstance(existing, StderrHandler):
            return existing
    as_text = os.environ.get("RAPPORT_LOG_FORMAT", "json").strip().lower() == "text"
    formatter: logging.Formatter = TextFormatter() if as_text else JsonFormatter(service_name)
    handler = StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(add_trace_context)
    root.addHandler(handler)
    root.setLevel(os.environ.get("RAPPORT_LOG_LEVEL", "INFO").strip().upper())
    # uvicorn logs through its own handlers (no propagation): give them the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for uvicorn_handler in logging.getLogger(name).handlers:
            uvicorn_handler.setFormatter(formatter)
            uvicorn_handler.addFilter(add_trace_context)
    return handler
