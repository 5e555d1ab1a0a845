"""Where the read path's milliseconds go: py-spy on a service under wrk load.

`python -m bench.profile_read [--service profile|support] [--postgres] [--seconds 15]`

Starts profile and support as the read-path case does (as `make run` runs them:
development, tracing on, spans written as JSON lines), seeds customers, saturates
one route with wrk, and samples the service process with `py-spy record --gil` meanwhile
(the thread that holds the GIL: what keeps the one Python core busy).
Prints wrk's figures and the functions that hold the most samples, by own time
(the function itself) and by total time (with what it calls). `--raw FILE` keeps
py-spy's collapsed stacks (for flame graph tools).
"""

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.cases.read_path import ROUTES, load, read_targets
from bench.core import Context, Sizes

PY_SPY = Path(sys.executable).with_name("py-spy")
# Frames every sample of the server has (process start, the event loop): no information.
ENTRY_FRAMES = re.compile(
    r"click/|runpy|uvicorn/(main|server|_compat|__main__)\.py|asyncio/runners|threading\.py"
)
# Layers a sample is counted in: the first whose pattern matches its stack (the export and
# metrics work first, wherever they run), else the layer of its innermost frame below.
WHOLE_STACK_LAYERS = (
    ("span export (batch thread)", r"BatchProcessor\.worker"),
    ("metrics", r"metrics/_internal"),
    ("span start/end", r"Tracer\.start_span|_Span\.end|Span\.end|use_span"),
)
LEAF_LAYERS = (
    ("database tracing (EngineTracer)", r"instrumentation/sqlalchemy|EngineTracer"),
    ("database driver (aiosqlite/asyncpg)", r"aiosqlite|asyncpg|sqlite_driver"),
    ("SQLAlchemy (session, Core, ORM)", r"sqlalchemy/|sqlmodel/"),
    ("pydantic", r"pydantic"),
    ("the route and its service", r"rapport_"),
    ("OpenTelemetry ASGI middleware", r"instrumentation/asgi|asgi/__init__"),
    ("FastAPI, Starlette, uvicorn", r"starlette/|fastapi/|uvicorn/|httptools"),
    ("asyncio", r"asyncio/"),
)


def _frame_name(frame: str) -> str:
    """`read_customer (customers/api.py:60)` as `read_customer (customers/api.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "rapport/", "/lib/python3.11/"):
        where = where.split(marker, 1)[-1]
    return f"{name} ({where})"


def top_functions(collapsed: str, count: int = 25) -> tuple[int, list[tuple[str, int, int]]]:
    """Total samples and the `count` functions with the most own samples: name, own, total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        weight = int(number)
        samples += weight
        frames = [_frame_name(frame) for frame in stack.split(";")]
        own[frames[-1]] += weight
        for name in set(frames):
            total[name] += weight
    return samples, [(name, n, total[name]) for name, n in own.most_common(count)]


def by_total(collapsed: str, count: int = 25) -> list[tuple[str, int]]:
    """The `count` functions that are on the stack in the most samples (entry frames left out)."""
    total: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            for name in {_frame_name(frame) for frame in stack.split(";")}:
                if not ENTRY_FRAMES.search(name):
                    total[name] += int(number)
    return total.most_common(count)


def _layer(stack: str) -> str:
    for name, pattern in WHOLE_STACK_LAYERS:
        if re.search(pattern, stack):
            return name
    for frame in reversed(stack.split(";")):
        for name, pattern in LEAF_LAYERS:
            if re.search(pattern, frame):
                return name
    return "other"


def by_layer(collapsed: str) -> list[tuple[str, int]]:
    """Samples per layer of the stack (see LEAF_LAYERS), most first."""
    layers: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            layers[_layer(stack)] += int(number)
    return layers.most_common()


async def profile(service: str, use_postgres: bool, seconds: float, raw: Path | None) -> str:
    sizes = Sizes.quick().with_overrides(max_seconds=60.0)
    workdir = Path(tempfile.mkdtemp(prefix="rapport-profile-read-"))
    kind = "postgresql" if use_postgres else "sqlite"
    out = workdir / "stacks.txt"
    async with (
        Context(sizes, workdir=workdir, use_postgres=use_postgres) as ctx,
        read_targets(ctx, kind) as targets,
    ):
        await load(ctx, targets, service, seconds=2)
        spy = await asyncio.create_subprocess_exec(
            str(PY_SPY),
            "record",
            "--pid",
            str(targets.pids[service]),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--gil",
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        measured = await load(ctx, targets, service, seconds=seconds)
        _, err = await spy.communicate()
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode()[-1000:]}")
    collapsed = out.read_text()
    if raw is not None:
        shutil.copyfile(out, raw)
    shutil.rmtree(workdir, ignore_errors=True)
    samples, own = top_functions(collapsed)
    lines = [
        f"{service} GET {ROUTES[service]} ({kind}), wrk {measured.connections} connections, "
        f"{measured.seconds:.0f} s: {measured.rate:.0f} req/s, p50 {measured.p50_ms:.1f} ms, "
        f"p99 {measured.p99_ms:.1f} ms, CPU {measured.cpu_ms_per_request or 0:.2f} ms/req; "
        f"py-spy {samples} samples of the thread holding the GIL",
        "",
        "  own%  total%  function (own time)",
    ]
    lines += [f"{100 * n / samples:6.1f} {100 * t / samples:6.1f}  {name}" for name, n, t in own]
    cpu = measured.cpu_ms_per_request or 0.0
    lines += ["", "  share   ~CPU ms/req  layer"]
    lines += [
        f"{100 * n / samples:6.1f}%  {cpu * n / samples:10.2f}  {name}"
        for name, n in by_layer(collapsed)
    ]
    lines += ["", "  total%  function (with what it calls)"]
    lines += [f"{100 * t / samples:7.1f}  {name}" for name, t in by_total(collapsed)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_read", description=__doc__)
    parser.add_argument("--service", choices=("profile", "support"), default="profile")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    print(asyncio.run(profile(args.service, args.postgres, args.seconds, args.raw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
