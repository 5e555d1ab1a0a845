"""The bare app the read path is compared with, and the httpx client that seeds the services.

The load itself is `wrk` (bench/wrk.py): a Python client saturates before the server does.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.core import wait_until
from rapport_events.testing.broker import free_port
from rapport_events.testing.stack import DEV_TOKEN

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
ROOT = Path(__file__).resolve().parent.parent


def client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=10.0, headers=AUTH)


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
