"""Spans written as JSON lines read exactly as the SDK's `ReadableSpan.to_json()` gives them."""

import json
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rapport_events.tracing import JsonLinesSpanExporter


def finished_spans() -> list:  # type: ignore[type-arg]
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "lines"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /customers/{id}", kind=trace.SpanKind.SERVER) as outer:
        outer.set_attribute("http.route", "/customers/{id}")
        outer.set_attribute("tags", ("a", "b"))
        outer.add_event("cache miss", {"key": "c-1", "size": 3})
        link = trace.Link(outer.get_span_context(), {"messaging.message.id": "m-1"})
        with tracer.start_as_current_span("SELECT rapport", links=[link]) as inner:
            inner.set_status(trace.Status(trace.StatusCode.ERROR, "no such table"))
    provider.shutdown()
    return list(memory.get_finished_spans())


class TestJsonLines:
    def test_each_line_is_the_sdk_json_of_its_span(self, tmp_path: Path) -> None:
        spans = finished_spans()
        exporter = JsonLinesSpanExporter(tmp_path / "lines.jsonl")
        exporter.export(spans)
        lines = (tmp_path / "lines.jsonl").read_text().splitlines()
        assert len(lines) == 2
        for line, span in zip(lines, spans, strict=True):
            assert json.loads(line) == json.loads(span.to_json())
        child = json.loads(lines[0])
        assert child["status"] == {"status_code": "ERROR", "description": "no such table"}
        assert child["links"][0]["attributes"] == {"messaging.message.id": "m-1"}
        assert child["resource"]["attributes"]["service.name"] == "lines"
