"""Print span trees from the JSON-lines span files that `make run` writes under var/traces.

Each service writes `<RAPPORT_TRACE_DIR>/<service>.jsonl`, one `ReadableSpan.to_json()`
object per line (rapport_events.tracing.JsonLinesSpanExporter), rotated by size into
`<service>.jsonl.1`, `.2`, ... This joins all the files by trace id and prints the most
recent trace as a tree:

    python tools/traces.py                  # the latest trace
    python tools/traces.py --last 3         # the three latest
    python tools/traces.py --trace 4b3a40   # one trace, by id or unique prefix
    python tools/traces.py --service campaign --all

Traces of one span alone (connection set-up, migrations, polling) are skipped
unless `--all` is given. Spans arrive in batches, so a trace seconds old may
still be missing its last spans.
"""

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "var" / "traces"
# Attributes worth a glance in the tree, in the order shown.
SHOWN_ATTRIBUTES = (
    "http.route",
    "http.response.status_code",
    "http.status_code",
    "messaging.destination.partition.id",
    "messaging.kafka.offset",
    "cloudevents.event_type",
    "error.type",
)


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    start: datetime
    end: datetime
    status: str
    attributes: dict[str, Any]
    links: list[str]
    children: list["Span"] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000


def _hex(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("0x").lower()


def parse_span(raw: dict[str, Any], fallback_service: str) -> Span:
    """One span from its `ReadableSpan.to_json()` form."""
    context = raw.get("context") or {}
    resource = (raw.get("resource") or {}).get("attributes") or {}
    return Span(
        trace_id=_hex(context.get("trace_id")) or "",
        span_id=_hex(context.get("span_id")) or "",
        parent_id=_hex(raw.get("parent_id")),
        name=raw.get("name", "?"),
        kind=str(raw.get("kind", "")).removeprefix("SpanKind."),
        service=resource.get("service.name") or fallback_service,
        start=datetime.fromisoformat(raw["start_time"]),
        end=datetime.fromisoformat(raw.get("end_time") or raw["start_time"]),
        status=(raw.get("status") or {}).get("status_code", "UNSET"),
        attributes=raw.get("attributes") or {},
        links=[
            _hex((link.get("context") or {}).get("span_id")) or ""
            for link in raw.get("links") or []
        ],
    )


def span_files(directory: Path) -> list[Path]:
    """The `<service>.jsonl` files and their rotated `<service>.jsonl.<n>` copies."""
    paths = [*directory.glob("*.jsonl"), *directory.glob("*.jsonl.*")]
    return sorted(path for path in paths if path.is_file() and _service_of(path))


def _service_of(path: Path) -> str:
    service, dot_jsonl, number = path.name.rpartition(".jsonl")
    return service if dot_jsonl and (not number or number[1:].isdigit()) else ""


def read_spans(directory: Path) -> Iterator[Span]:
    """Every span of every span file in the directory; torn or foreign lines are skipped."""
    for path in span_files(directory):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    yield parse_span(json.loads(line), _service_of(path))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return dict(traces)


def select_traces(
    traces: dict[str, list[Span]],
    *,
    trace_id: str | None = None,
    last: int = 1,
    service: str | None = None,
    include_single: bool = False,
) -> list[list[Span]]:
    """The traces to print, oldest first."""
    if trace_id:
        wanted = trace_id.removeprefix("0x").lower()
        matches = [tid for tid in traces if tid.startswith(wanted)]
        if len(matches) > 1:
            raise SystemExit(f"trace id prefix {trace_id!r} matches {len(matches)} traces")
        return [traces[matches[0]]] if matches else []
    candidates = [
        spans
        for spans in traces.values()
        if (include_single or len(spans) > 1)
        and (service is None or any(span.service == service for span in spans))
    ]
    candidates.sort(key=lambda spans: min(span.start for span in spans))
    return candidates[-last:] if last > 0 else candidates


def build_tree(spans: list[Span]) -> list[Span]:
    """Link children to parents; the roots (and spans whose parent is not on disk), by start."""
    by_id = {span.span_id: span for span in spans}
    for span in spans:
        span.children = []
    roots = []
    for span in spans:
        parent = by_id.get(span.parent_id) if span.parent_id else None
        if parent is None:
            roots.append(span)
        else:
            parent.children.append(span)
    for span in spans:
        span.children.sort(key=lambda child: child.start)
    return sorted(roots, key=lambda root: root.start)


def _details(span: Span, known: set[str]) -> str:
    parts = [f"{key}={span.attributes[key]}" for key in SHOWN_ATTRIBUTES if key in span.attributes]
    if span.status == "ERROR":
        parts.insert(0, "ERROR")
    if span.parent_id and span.parent_id not in known:
        parts.append(f"parent {span.parent_id} not on disk")
    if span.links:
        parts.append("links " + ",".join(link[:8] for link in span.links))
    return f"  ({', '.join(parts)})" if parts else ""


def render(spans: list[Span], out: TextIO) -> None:
    """Print one trace: a header, then one line per span, indented under its parent."""
    start = min(span.start for span in spans)
    end = max(span.end for span in spans)
    services = sorted({span.service for span in spans})
    known = {span.span_id for span in spans}
    out.write(
        f"trace {spans[0].trace_id}  {start.isoformat(sep=' ', timespec='milliseconds')}"
        f"  {(end - start).total_seconds() * 1000:.1f} ms  {len(spans)} spans"
        f"  services: {', '.join(services)}\n"
    )
    width = max(len("service"), *(len(service) for service in services))
    out.write(f"{'start':>11} {'duration':>11}  {'kind':<8} {'service':<{width}}  span\n")

    def walk(span: Span, depth: int) -> None:
        offset = (span.start - start).total_seconds() * 1000
        out.write(
            f"{offset:>+9.1f}ms {span.duration_ms:>9.2f}ms  {span.kind:<8} "
            f"{span.service:<{width}}  {'  ' * depth}{span.name}{_details(span, known)}\n"
        )
        for child in span.children:
            walk(child, depth + 1)

    for root in build_tree(spans):
        walk(root, 0)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("RAPPORT_TRACE_DIR") or DEFAULT_DIR),
        help="folder of <service>.jsonl[.n] span files (default: $RAPPORT_TRACE_DIR or var/traces)",
    )
    parser.add_argument("--trace", help="print this trace (full id or a unique prefix)")
    parser.add_argument("--last", type=int, default=1, help="print the N most recent traces")
    parser.add_argument("--service", help="only traces that touch this service")
    parser.add_argument(
        "--all", action="store_true", help="include traces of a single span (set-up, polling)"
    )
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"no span files: {args.dir} does not exist (make run writes them)", file=sys.stderr)
        return 1
    selected = select_traces(
        group_traces(read_spans(args.dir)),
        trace_id=args.trace,
        last=args.last,
        service=args.service,
        include_single=args.all,
    )
    if not selected:
        print(f"no matching trace in {args.dir}", file=sys.stderr)
        return 1
    for index, spans in enumerate(selected):
        if index:
            out.write("\n")
        render(spans, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
