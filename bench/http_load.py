"""HTTP load with httpx.AsyncClient: closed loop with bounded concurrency, and the bare app."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.core import p50_p99, wait_until
from rapport_events.testing.broker import free_port
from rapport_events.testing.stack import DEV_TOKEN

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Load:
    """What a closed-loop run measured."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    offered: float | None = None  # requests/s an open loop asked for

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> dict[str, float | None]:
        return {**asdict(self), "rate": self.rate}


def client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=10.0, headers=AUTH)


async def _get(http: httpx.AsyncClient, url: str, expect: int) -> bool:
    """One GET; a kept-alive connection the server closed meanwhile is retried once."""
    for attempt in (1, 2):
        try:
            return (await http.get(url)).status_code == expect
        except httpx.TransportError:
            if attempt == 2:
                return False
    return False


async def closed_loop(
    http: httpx.AsyncClient,
    url: Callable[[int], str],
    *,
    total: int,
    concurrency: int,
    max_seconds: float,
    expect: int = 200,
) -> Load:
    """`concurrency` workers issue `total` GETs back to back (or stop at `max_seconds`)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal issued, errors
        while issued < total and time.perf_counter() < deadline:
            index = issued
            issued += 1
            began = time.perf_counter()
            ok = await _get(http, url(index), expect)
            latencies.append(time.perf_counter() - began)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    p50, p99 = p50_p99(latencies)
    return Load(len(latencies), errors, elapsed, p50 * 1000, p99 * 1000)


async def open_loop(
    http: httpx.AsyncClient,
    url: Callable[[int], str],
    *,
    rate: float,
    total: int,
    max_seconds: float,
    expect: int = 200,
) -> Load:
    """One GET every 1/rate s whatever the earlier ones do; latency counts from the moment a
    request was due, so a stalled server is not hidden by requests that were never sent."""
    total = max(2, min(total, int(rate * max_seconds)))
    latencies: list[float] = []
    errors = 0

    async def one(index: int, due: float) -> None:
        nonlocal errors
        ok = await _get(http, url(index), expect)
        latencies.append(time.perf_counter() - due)
        errors += not ok

    tasks = []
    started = time.perf_counter()
    async with asyncio.timeout(max_seconds * 2):
        for index in range(total):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    p50, p99 = p50_p99(latencies)
    return Load(len(latencies), errors, elapsed, p50 * 1000, p99 * 1000, offered=rate)


class BareApp:
    """bench.bare_app under uvicorn in a subprocess, as the services run."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "bare-app.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        self._spawn()
        await self._wait_up(timeout)

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def _wait_up(self, timeout: float) -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:

            async def up() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"bare app exited: {self.log_path.read_text()[-2000:]}")
                try:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(up, timeout=timeout, what="bare app start", interval=0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None
