"""`python -m bench [--quick] [--strict] [--only CASE,...]`: run the cases, print, save JSON.

The exit code is 0 even when a target is missed (this is a report); `--strict`
makes a missed target or a failed case exit 1.
"""

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from bench import report
from bench.cases import CASES
from bench.core import Context, Result, Sizes
from rapport_events.heap import freeze_startup_heap
from rapport_events.tracing import configure_tracing

RESULTS = Path(__file__).resolve().parent / "results"
SIZE_FLAGS = {
    "messages": "raw produce/consume messages per size",
    "relay_events": "outbox rows the relay publishes",
    "consumer_events": "events the consumer runner applies",
    "requests": "HTTP requests per app and load",
    "concurrency": "HTTP requests in flight",
    "http_seconds": "seconds of one wrk run (read path)",
    "e2e_customers": "customers created at half saturation",
    "saturation_customers": "customers created to find saturation",
    "ingest_events": "tracking calls posted to /v1/batch",
    "revocations": "partner_sharing consents revoked",
    "replay_events": "events replayed into a fresh campaign projection",
    "warmup": "warm-up messages / requests",
    "repeats": "repetitions of cheap baselines",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, < 2 minutes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", help="comma-separated case names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL variants")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON files")
    parser.add_argument("--max-seconds", type=float, help="upper bound of any measuring loop")
    for name, text in SIZE_FLAGS.items():
        kind = float if name == "http_seconds" else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text)
    parser.epilog = "Every size can also be set as BENCH_<NAME>, e.g. BENCH_RELAY_EVENTS=5000."
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    preset = Sizes.quick() if args.quick else Sizes.full()
    flags = {name: getattr(args, name) for name in SIZE_FLAGS}
    return preset.with_env().with_overrides(max_seconds=args.max_seconds, **flags)


def selected(only: str | None) -> list[ModuleType]:
    if not only:
        return list(CASES)
    names = {name.strip() for name in only.split(",") if name.strip()}
    unknown = names - {case.NAME for case in CASES}
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    return [case for case in CASES if case.NAME in names]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run_case(case: ModuleType, ctx: Context) -> list[Result]:
    """One case, bounded in time; a crash is an ERROR row, and the next case still runs."""
    log(f"bench: {case.NAME} ...")
    began = time.perf_counter()
    try:
        async with asyncio.timeout(ctx.sizes.max_seconds * 10):
            results: list[Result] = await case.run(ctx)
    except Exception as error:
        logging.getLogger("bench").debug("case %s failed", case.NAME, exc_info=True)
        results = [Result(case.NAME, "", status="ERROR", notes=f"{type(error).__name__}: {error}")]
    for result in results:
        log(f"  {result.case}: {result.status} {result.notes}")
    log(f"bench: {case.NAME} took {time.perf_counter() - began:.0f}s")
    return results


async def run(cases: list[ModuleType], sizes: Sizes, *, use_postgres: bool) -> list[Result]:
    results: list[Result] = []
    async with Context(sizes, use_postgres=use_postgres, log=log) as ctx:
        for case in cases:
            results.extend(await run_case(case, ctx))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for case in CASES:
            print(f"{case.NAME:18} {(case.__doc__ or '').strip().splitlines()[0]}")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Clients closed at the end of a case log connection errors, and a relay stopped in the
    # middle of a query logs the pool's reset: noise in a report.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    # Spans are made as the services make them (SDK provider, no exporter unless OTEL_* says).
    configure_tracing("bench")
    # As a service's start-up does (EventRuntime.start), so in-process cases run as they do.
    freeze_startup_heap()
    sizes = sizes_from(args)
    mode = "quick" if args.quick else "full"
    started = datetime.now(UTC)
    before = report.machine()
    log(f"bench: {mode} run, {before['cpus']} cores, load average {before['load_average']}")
    results = asyncio.run(run(selected(args.only), sizes, use_postgres=not args.no_postgres))
    doc = report.document(
        results, mode=mode, sizes=asdict(sizes), started=started, machine_before=before
    )
    paths = report.write(doc, args.out)
    print(report.table(results))
    print(
        f"\n{mode} run of {started:%Y-%m-%d %H:%M} UTC on {before['cpus']} cores "
        f"(load average {before['load_average']} before, "
        f"{doc['machine']['load_average_after']} after); JSON: {', '.join(map(str, paths))}"
    )
    missed = [r for r in results if r.status in ("FAIL", "ERROR")]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
