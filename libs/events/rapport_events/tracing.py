"""OpenTelemetry set-up and W3C trace-context helpers for the log.

Exporters follow the standard `OTEL_*` variables (OTLP when
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_TRACES_EXPORTER=otlp` is set).
`RAPPORT_TRACE_DIR` also writes every span as one JSON line to
`<dir>/<service>.jsonl`, so a developer without a tracing UI can read traces
(`make traces`, tools/traces.py). A file past `RAPPORT_TRACE_FILE_MAX_MB`
becomes `<service>.jsonl.1` (the older ones `.2`, ...), and only
`RAPPORT_TRACE_FILES` files per service are kept.

HTTP spans and metrics follow the stable HTTP semantic conventions
(`http.server.request.duration`, `http.route`, `http.response.status_code`):
`OTEL_SEMCONV_STABILITY_OPT_IN` defaults to `http` here, before any
instrumentation reads it; set it yourself to choose otherwise.
"""

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util import ns_to_iso_str

TRACER_NAME = "rapport_events"
# Read once per process by the first instrumentation; setting it at import is early enough.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


TRACE_FILE_MAX_MB = 50.0
TRACE_FILES = 5


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object per line, rotated by size.

    A write that would take the file past `max_bytes` first renames it `<name>.1`
    (shifting older ones to `.2`, ...) and drops the oldest, so a service keeps at
    most `files` files of about `max_bytes` each, however long it runs.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = int(TRACE_FILE_MAX_MB * 1024 * 1024),
        files: int = TRACE_FILES,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max_bytes = max(1, max_bytes)
        self._files = max(1, files)
        self._lock = threading.Lock()
        self._resources: dict[int, tuple[Resource, str]] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(self.line(span) for span in spans).encode()
        with self._lock:
            try:
                size = self._path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self._max_bytes:
                self._rotate()
            with self._path.open("ab") as out:
                out.write(data)
        return SpanExportResult.SUCCESS

    def line(self, span: ReadableSpan) -> str:
        """The span as `span.to_json()` gives it, on one line.

        `to_json` encodes the span's resource with an indent (Python's slow encoder) and
        parses it back, for every span; the resource is the same for all of them, so it
        is encoded once here and the rest goes through the C encoder in one pass.
        """
        context = span.context
        parent = span.parent
        status = {"status_code": span.status.status_code.name}
        if span.status.description:
            status["description"] = span.status.description
        fields = {
            "name": span.name,
            "context": _context_json(context) if context else None,
            "kind": str(span.kind),
            "parent_id": f"0x{parent.span_id:016x}" if parent is not None else None,
            "start_time": ns_to_iso_str(span.start_time) if span.start_time else None,
            "end_time": ns_to_iso_str(span.end_time) if span.end_time else None,
            "status": status,
            "attributes": dict(span.attributes) if span.attributes is not None else None,
            "events": [
                {
                    "name": event.name,
                    "timestamp": ns_to_iso_str(event.timestamp),
                    "attributes": dict(event.attributes) if event.attributes is not None else None,
                }
                for event in span.events
            ],
            "links": [
                {
                    "context": _context_json(link.context),
                    "attributes": dict(link.attributes) if link.attributes is not None else None,
                }
                for link in span.links
            ],
        }
        head = json.dumps(fields, default=str)
        return f'{head[:-1]}, "resource": {self._resource_json(span.resource)}}}\n'

    def _resource_json(self, resource: Resource) -> str:
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            cached = (resource, json.dumps(json.loads(resource.to_json(indent=None))))
            self._resources[id(resource)] = cached
        return cached[1]

    def _rotate(self) -> None:
        """`<name>` becomes `<name>.1`, `.1` becomes `.2`, ...; the oldest beyond `files` goes."""
        kept = [self._path] + [self.rotated(n) for n in range(1, self._files)]
        kept[-1].unlink(missing_ok=True)
        for newer, older in reversed(list(zip(kept, kept[1:], strict=False))):
            if newer.exists():
                newer.replace(older)

    def rotated(self, number: int) -> Path:
        """The path of the `number`-th older file."""
        return self._path.with_name(f"{self._path.name}.{number}")

    def shutdown(self) -> None:
        return None


def _context_json(context: trace.SpanContext) -> dict[str, str]:
    return {
        "trace_id": f"0x{context.trace_id:032x}",
        "span_id": f"0x{context.span_id:016x}",
        "trace_state": repr(context.trace_state),
    }


def _trace_file_settings() -> tuple[int, int]:
    """`RAPPORT_TRACE_FILE_MAX_MB` and `RAPPORT_TRACE_FILES`, or their defaults."""
    max_mb = float(os.environ.get("RAPPORT_TRACE_FILE_MAX_MB") or TRACE_FILE_MAX_MB)
    files = int(os.environ.get("RAPPORT_TRACE_FILES") or TRACE_FILES)
    return int(max_mb * 1024 * 1024), files


# Spans a file export writes at once. The export thread holds the GIL while it encodes a
# batch (about 30 µs a span), and requests wait meanwhile: 64 spans hold them up about
# 2 ms, the SDK's 512 about 15 ms. OTEL_BSP_MAX_EXPORT_BATCH_SIZE still decides when set.
FILE_EXPORT_BATCH = 64


def _file_batch() -> int | None:
    return None if os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") else FILE_EXPORT_BATCH


def _otlp_wanted() -> bool:
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if exporters:
        return "otlp" in exporters.split(",")
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def sdk_disabled() -> bool:
    """`OTEL_SDK_DISABLED=true`: no traces, no metrics."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def service_version(service_name: str) -> str:
    """The installed version of `rapport-<service>` (of the event library when unknown)."""
    for package in (f"rapport-{service_name}", "rapport-events"):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return "0.0.0"


def service_resource(service_name: str, version: str | None = None) -> Resource:
    """`service.name` and `service.version` (plus `OTEL_RESOURCE_ATTRIBUTES`) of every signal."""
    return Resource.create(
        {SERVICE_NAME: service_name, SERVICE_VERSION: version or service_version(service_name)}
    )


def configure_tracing(service_name: str, version: str | None = None) -> TracerProvider | None:
    """Install the SDK tracer provider once per process; None when tracing is disabled."""
    if sdk_disabled():
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=service_resource(service_name, version))
    if _otlp_wanted():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace_dir = os.environ.get("RAPPORT_TRACE_DIR")
    if trace_dir:
        max_bytes, files = _trace_file_settings()
        exporter = JsonLinesSpanExporter(
            Path(trace_dir) / f"{service_name}.jsonl", max_bytes=max_bytes, files=files
        )
        batch = _file_batch()
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=batch))
    trace.set_tracer_provider(provider)
    return provider


def tracing_enabled() -> bool:
    """Whether a tracer provider is installed, so spans are recorded and not only passed on."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


_cached_tracer: tuple[trace.TracerProvider, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The tracer the event library's spans come from."""
    # get_tracer builds a new tracer each call (about 0.1 ms, per relayed event); one
    # per provider keeps a provider set later, as tests do, in effect.
    global _cached_tracer
    provider = trace.get_tracer_provider()
    if _cached_tracer is None or _cached_tracer[0] is not provider:
        _cached_tracer = (provider, trace.get_tracer(TRACER_NAME, tracer_provider=provider))
    return _cached_tracer[1]


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Instrumentation off: a background loop's polls would each be a trace of one statement.

    Background loops (workers, monitors, purges, readiness checks) look for work every
    few seconds outside any request; their statements would have no parent span. What
    they find is done outside this block, under `background_span`.
    """
    with suppress_instrumentation():
        yield


@contextlib.contextmanager
def background_span(name: str, **attributes: str | int) -> Iterator[None]:
    """One span (the root of its trace) for a unit of work a background loop found.

    Its statements, HTTP calls and published events are children of it, so the work is
    one trace rather than a scatter of parentless statements.
    """
    with tracer().start_as_current_span(name, attributes=attributes):
        yield


def current_trace_headers() -> dict[str, str]:
    """W3C `traceparent`/`tracestate` of the active span (empty when none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def context_from_headers(headers: Mapping[str, str]) -> otel_context.Context:
    """The remote context carried by W3C headers."""
    return propagate.extract(dict(headers))


def span_context_of(headers: Mapping[str, str]) -> trace.SpanContext | None:
    """The remote span context carried by headers, if valid."""
    span_context = trace.get_current_span(context_from_headers(headers)).get_span_context()
    return span_context if span_context.is_valid else None
