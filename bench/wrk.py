"""HTTP load with `wrk`: a C load generator, so the server saturates before the client does.

`wrk` is Debian's package; `ensure_wrk()` installs it with apt-get when it is missing
and this is root (as `make compose-check` does for docker-compose). Each run gets a
Lua script that sends the bearer token, cycles over many paths (one per customer id),
and may pause each connection between requests (`wrk`'s `delay()`): wrk2's fixed
rate is not in Debian's wrk, so a lower load is `connections` connections that each
wait a random time (exponential, of mean `connections / rate` seconds less the time a
request takes) before the next, so that arrivals are spread as independent clients'
are, not in step.
Latency percentiles come from `wrk --latency`.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rapport_events.testing.stack import DEV_TOKEN

WRK = "wrk"
THREADS = 1  # one wrk thread is far from saturating; the other core serves
MAX_PAUSE_MS = 4000  # a connection's longest pause between requests


class WrkMissing(RuntimeError):
    """wrk is not installed and could not be."""


def ensure_wrk() -> str:
    """The path of `wrk`, installing Debian's package when missing and root."""
    found = shutil.which(WRK)
    if found:
        return found
    if os.geteuid() != 0:
        raise WrkMissing("wrk is not installed and this is not root: apt-get install wrk")
    install = ["apt-get", "install", "-y", "--no-install-recommends", WRK]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "check": False}
    if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update"], **quiet)  # type: ignore[call-overload]
        subprocess.run(install, **quiet)  # type: ignore[call-overload]
    found = shutil.which(WRK)
    if not found:
        raise WrkMissing("apt-get could not install wrk")
    return found


@dataclass(frozen=True)
class WrkLoad:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rate: float  # requests/s as wrk reports them
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # non-2xx/3xx replies, socket errors and timeouts
    connections: int
    delay_ms: float = 0.0  # each connection's pause between requests (0: saturating)
    cpu_ms_per_request: float | None = None  # CPU of the server process (all its threads)
    p95_ms: float | None = None  # printed by the script's done() (wrk --latency stops at 90, 99)
    marked: int = 0  # replies whose body held the run's `marker`

    def summary(self) -> dict[str, float | None]:
        return asdict(self)


_DURATION = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """`812.00us`, `3.41ms`, `1.20s`, `2.00m` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _DURATION[match[2]]


def parse(output: str, connections: int, delay_ms: float = 0.0) -> WrkLoad:
    """A WrkLoad from `wrk --latency` output; raises when it is not one."""
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.M))
    totals = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)
    if not (totals and rate and latency and "50" in percentiles and "99" in percentiles):
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    errors = 0
    if status := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(status[1])
    if socket := re.search(r"Socket errors: (.*)$", output, re.M):
        errors += sum(int(n) for n in re.findall(r"\d+", socket[1]))
    return WrkLoad(
        requests=int(totals[1]),
        seconds=_ms(totals[2]) / 1000,
        rate=float(rate[1]),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        max_ms=_ms(latency[1]),
        errors=errors,
        connections=connections,
        delay_ms=delay_ms,
        p95_ms=int(p95[1]) / 1000 if (p95 := re.search(r"^p95_us: (\d+)$", output, re.M)) else None,
        marked=int(marked[1]) if (marked := re.search(r"^marked: (\d+)$", output, re.M)) else 0,
    )


def script(
    paths: Sequence[str],
    *,
    token: str | None = DEV_TOKEN,
    delay_ms: float = 0.0,
    header_sets: Sequence[Mapping[str, str]] = (),
    marker: str | None = None,
) -> str:
    """The Lua script of a run: each request the next of `paths`, with the bearer token.

    With `header_sets`, each request also carries the next set in turn (e.g. the cookies of
    several logged-in users); with `marker`, replies whose body holds it are counted. The
    script's done() prints the p95 latency, which `wrk --latency` does not.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lua_paths = ",".join(json.dumps(path) for path in paths)
    lua_sets = ",".join(_lua_table({**headers, **extra}) for extra in header_sets or [{}])
    # Exponential pauses (mean `delay_ms`): connections that all paused the same time would
    # fall into step and arrive in bursts, queueing behind each other at any load. Cut at
    # MAX_PAUSE_MS: uvicorn closes a connection idle for 5 s, which wrk counts as an error.
    pause = (
        f"math.randomseed(os.time())\n"
        f"function delay() return math.min(-{delay_ms:.3f} * math.log(1 - math.random()), "
        f"{MAX_PAUSE_MS}) end\n"
        if delay_ms > 0
        else ""
    )
    # A response() callback makes wrk hand each body to Lua: only when a marker is asked for.
    count = (
        f"function response(status, headers, body)\n"
        f"  if body and body:find({json.dumps(marker)}, 1, true) then marked = marked + 1 end\n"
        "end\n"
        if marker
        else ""
    )
    return (
        f"local paths = {{{lua_paths}}}\n"
        f"local header_sets = {{{lua_sets}}}\n"
        "local n = 0\n"
        "marked = 0\n"
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "function request()\n"
        "  n = n + 1\n"
        "  local headers = header_sets[(n % #header_sets) + 1]\n"
        '  return wrk.format("GET", paths[(n % #paths) + 1], headers)\n'
        "end\n" + pause + count + "function done(summary, latency, requests)\n"
        "  local total = 0\n"
        '  for _, thread in ipairs(threads) do total = total + thread:get("marked") end\n'
        '  io.write(string.format("p95_us: %d\\nmarked: %d\\n", latency:percentile(95), total))\n'
        "end\n"
    )


def _lua_table(headers: Mapping[str, str]) -> str:
    return "{" + ",".join(f"[{json.dumps(k)}]={json.dumps(v)}" for k, v in headers.items()) + "}"


async def run(
    base_url: str,
    paths: Sequence[str],
    *,
    workdir: Path,
    seconds: float,
    connections: int,
    delay_ms: float = 0.0,
    token: str | None = DEV_TOKEN,
    server_pid: int | None = None,
    header_sets: Sequence[Mapping[str, str]] = (),
    marker: str | None = None,
) -> WrkLoad:
    """`connections` keep-alive connections GET `paths` in turn for `seconds`.

    With `server_pid`, the server's CPU time per request is measured too: unlike the
    rate, it hardly moves when other work shares the machine.
    """
    wrk = ensure_wrk()
    lua = workdir / f"wrk-{os.getpid()}-{id(paths)}.lua"
    lua.write_text(
        script(paths, token=token, delay_ms=delay_ms, header_sets=header_sets, marker=marker)
    )
    command = [
        wrk,
        f"--threads={THREADS}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        f"--script={lua}",
        base_url,
    ]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(seconds + 30):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    finally:
        lua.unlink(missing_ok=True)
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else None
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited {process.returncode}: {out.decode()[-2000:]}")
    load = parse(out.decode(), connections, delay_ms)
    if cpu is None or not load.requests:
        return load
    return replace(load, cpu_ms_per_request=cpu * 1000 / load.requests)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delay_for(rate: float, connections: int, service_ms: float) -> float:
    """The pause per connection that makes `connections` connections offer about `rate`/s."""
    return max(connections * 1000.0 / rate - service_ms, 0.0)
