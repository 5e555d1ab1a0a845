"""HOOK: tracing on vs off, measured by `bench/tracing_overhead.py` when that module exists.

Another engineer owns bench/tracing_overhead.py; it exposes `async def measure() -> dict`.
It runs in a subprocess of its own (tracing is set up once per process, so it must
not share one with the other cases), with BENCH_MODE=quick|full in its environment.
This case understands these shapes of its dict (anything else is shown as INFO):

- `{"on": x, "off": y}` or `{"value": x, "baseline": y}`: throughput with tracing on
  and off (higher is better; add `"higher_is_better": false` for latencies), with
  optional `"unit"` and `"notes"`;
- `{"cost": c}` or `{"overhead": c}`: the fraction (0.08) or percent (8.0) lost.

The target is a cost of at most 15 %.
"""

import asyncio
import importlib.util
import json
import os
import sys
from typing import Any

from bench.core import Context, Result, skipped
from bench.http_load import ROOT

NAME = "tracing"
CASE = "tracing on vs off"
MODULE = "bench.tracing_overhead"
MAX_COST = 0.15
_SCRIPT = f"""
import asyncio, json
from {MODULE} import measure
print("TRACING " + json.dumps(asyncio.run(measure()), default=str))
"""


def available() -> bool:
    return importlib.util.find_spec(MODULE) is not None


async def run(ctx: Context) -> list[Result]:
    if not available():
        return [skipped(CASE, "not available yet: bench/tracing_overhead.py does not exist")]
    mode = "quick" if ctx.sizes.max_seconds < 60 else "full"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SCRIPT,
        cwd=ROOT,
        env={**os.environ, "BENCH_MODE": mode},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(ctx.sizes.max_seconds * 5):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = [line for line in out.decode().splitlines() if line.startswith("TRACING ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{MODULE}.measure() failed: {err.decode()[-1500:]}")
    return [interpret(json.loads(lines[-1].removeprefix("TRACING ")))]


def _number(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def interpret(data: dict[str, Any]) -> Result:
    """The module's dict as a report row: value with tracing, baseline without."""
    unit = str(data.get("unit", ""))
    notes = str(data.get("notes", ""))
    on, off = _number(data, "on", "value"), _number(data, "off", "baseline")
    target = f"cost ≤ {MAX_COST:.0%}"
    if on is not None and off:
        higher_is_better = bool(data.get("higher_is_better", True))
        cost = 1 - on / off if higher_is_better else on / off - 1
        return Result(
            CASE,
            unit,
            on,
            off,
            "tracing off",
            target,
            "PASS" if cost <= MAX_COST else "FAIL",
            f"cost {cost:.1%}" + (f"; {notes}" if notes else ""),
            {"measured": data, "cost": cost},
        )
    given = _number(data, "cost", "overhead")
    if given is not None:
        cost = given / 100 if given > 1 else given
        return Result(
            CASE,
            "cost",
            cost,
            None,
            "",
            target,
            "PASS" if cost <= MAX_COST else "FAIL",
            f"cost {cost:.1%}" + (f"; {notes}" if notes else ""),
            {"measured": data, "cost": cost},
        )
    return Result(
        CASE, unit, notes=f"unrecognised result: {data}"[:200], details={"measured": data}
    )
