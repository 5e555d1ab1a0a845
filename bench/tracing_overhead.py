"""Throughput of POST /customers on profile with telemetry off and on, in one run.

`python -m bench.tracing_overhead [--requests N] [--concurrency C] [--rounds R]`
prints the result as JSON; `make bench` imports `measure()`.

The tracer and meter providers are set once per process, so every measurement is
a child process of its own that builds profile's app in-process (SQLite, a real
Tansu broker for its relay) and drives it through httpx's ASGI transport. Four
variants, interleaved round by round so drift on a busy machine hits them alike:

- off: `OTEL_SDK_DISABLED=true` (no spans, no metrics);
- otlp: traces and metrics, spans sent over OTLP/HTTP (to a sink in the parent
  process), as in docker-compose and Kubernetes;
- json_lines: traces and metrics, every span written as JSON lines (`make run`);
- no_export: traces and metrics, spans recorded but exported nowhere.

`on` (otlp) / `off` is the figure to quote: the whole telemetry cost, export
included. Both are requests per CPU-second of the service process (all its
threads), which a busy machine hardly moves; wall-clock requests/s are beside them.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-tracing-token"
VARIANTS = ("off", "otlp", "json_lines", "no_export")
MODES = {  # BENCH_MODE -> (requests per child, rounds)
    "quick": (400, 2),
    "full": (2000, 3),
}


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and drops them, as a collector would take them."""

    received: dict[str, int] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.received[self.path] = self.received.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint on a free port, for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _variant_env(variant: str, trace_dir: Path, otlp_endpoint: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key != "RAPPORT_TRACE_DIR"
    }
    env["RAPPORT_LOG_LEVEL"] = "WARNING"
    if variant == "off":
        env["OTEL_SDK_DISABLED"] = "true"
    elif variant == "otlp":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
        env["OTEL_TRACES_EXPORTER"] = "otlp"
    elif variant == "json_lines":
        env["RAPPORT_TRACE_DIR"] = str(trace_dir)
    return env


async def _drive(client: Any, count: int, concurrency: int, label: str) -> None:
    """`count` POST /customers with `concurrency` in flight; every reply must be 201."""
    remaining = iter(range(count))

    async def worker() -> None:
        for n in remaining:
            reply = await client.post(
                "/customers",
                json={
                    "email": f"{label}-{n}@bench.example.com",
                    "first_name": "Bench",
                    "last_name": f"Customer {n}",
                    "country": "gb",
                },
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            if reply.status_code != 201:
                raise RuntimeError(f"POST /customers answered {reply.status_code}: {reply.text}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def child(bootstrap_servers: str, requests: int, concurrency: int, workdir: Path) -> dict:
    """One measurement in this process: requests/s of POST /customers on profile."""
    import httpx

    from rapport_events.settings import KafkaSettings
    from rapport_profile.main import create_app
    from rapport_profile.settings import Settings

    kafka = KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic=f"rapport.bench-tracing-{uuid.uuid4().hex[:8]}",
        partitions=3,
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )
    app = create_app(
        Settings(database_url=f"sqlite:///{workdir / 'profile.db'}", api_token=TOKEN, kafka=kafka)
    )
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.runtime.connected.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
            await _drive(client, max(requests // 10, 50), concurrency, "warmup")
            started, cpu_started = time.perf_counter(), time.process_time()
            await _drive(client, requests, concurrency, "measured")
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        # Let the relay finish, so stopping never cuts a publish short.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not (await app.state.runtime.relay.backlog())[0]:
                break
            await asyncio.sleep(0.05)
    return {
        "rps": requests / elapsed,
        "seconds": elapsed,
        "cpu_ms_per_request": cpu * 1000 / requests,
        "requests": requests,
    }


async def _run_child(
    variant: str,
    bootstrap_servers: str,
    requests: int,
    concurrency: int,
    scratch: Path,
    otlp_endpoint: str,
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=scratch))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.tracing_overhead",
        "--child",
        "--bootstrap-servers",
        bootstrap_servers,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
        "--workdir",
        str(workdir),
        cwd=ROOT,
        env=_variant_env(variant, workdir / "traces", otlp_endpoint),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} run failed: {err.decode()[-2000:]}")
    result: dict = json.loads(lines[-1])
    spans = workdir / "traces" / "profile.jsonl"
    result["spans_written"] = len(spans.read_text().splitlines()) if spans.exists() else 0
    return result


async def measure(
    requests: int | None = None,
    concurrency: int = 16,
    rounds: int | None = None,
    bootstrap_servers: str | None = None,
) -> dict:
    """Median requests/s of each variant and the on/off ratio (sizes from BENCH_MODE)."""
    from rapport_events.testing.broker import TansuBroker

    mode_requests, mode_rounds = MODES.get(os.environ.get("BENCH_MODE", "quick"), MODES["quick"])
    requests = requests or mode_requests
    rounds = rounds or mode_rounds
    broker = None
    with tempfile.TemporaryDirectory(prefix="rapport-bench-tracing-") as scratch:
        if bootstrap_servers is None:
            broker = await asyncio.to_thread(
                TansuBroker(log_path=Path(scratch) / "tansu.log").start
            )
            bootstrap_servers = broker.bootstrap_servers
        runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        try:
            with otlp_sink() as endpoint:
                for round_ in range(rounds):
                    # Rotate the order so no variant always runs first (or last) in a round.
                    shift = round_ % len(VARIANTS)
                    for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                        runs[variant].append(
                            await _run_child(
                                variant,
                                bootstrap_servers,
                                requests,
                                concurrency,
                                Path(scratch),
                                endpoint,
                            )
                        )
        finally:
            if broker is not None:
                await asyncio.to_thread(broker.stop)
    wall = {variant: statistics.median(r["rps"] for r in runs[variant]) for variant in VARIANTS}
    cpu_ms = {
        variant: statistics.median(r["cpu_ms_per_request"] for r in runs[variant])
        for variant in VARIANTS
    }
    # Requests per CPU-second: what one core sustains. Unlike wall-clock req/s it barely
    # moves when other processes compete for the machine, so it is the headline figure.
    per_core = {variant: 1000 / cpu_ms[variant] for variant in VARIANTS}
    return {
        "on": round(per_core["otlp"], 1),
        "off": round(per_core["off"], 1),
        "ratio": round(per_core["otlp"] / per_core["off"], 3),
        "per_core": {variant: round(value, 1) for variant, value in per_core.items()},
        "ratios": {v: round(per_core[v] / per_core["off"], 3) for v in VARIANTS},
        "wall_rps": {variant: round(value, 1) for variant, value in wall.items()},
        "wall_ratio": round(wall["otlp"] / wall["off"], 3),
        "otlp_posts_received": dict(_OtlpSink.received),
        "cpu_ms_per_request": {variant: round(value, 3) for variant, value in cpu_ms.items()},
        "unit": "req/s per core",
        "notes": (
            f"POST /customers on profile in-process (SQLite), {requests} requests, "
            f"{concurrency} in flight, median of {rounds}; on = traces over OTLP + metrics; "
            f"JSON lines {per_core['json_lines']:.0f}, no export {per_core['no_export']:.0f}; "
            f"wall clock {wall['otlp']:.0f} vs {wall['off']:.0f} req/s"
        ),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(
            child(args.bootstrap_servers, args.requests, args.concurrency, args.workdir)
        )
    else:
        result = asyncio.run(
            measure(args.requests, args.concurrency, args.rounds, args.bootstrap_servers)
        )
    print(json.dumps(result, indent=None if args.child else 2))


if __name__ == "__main__":
    main()
