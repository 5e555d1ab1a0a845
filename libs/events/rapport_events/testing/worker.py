"""The outbox relay or a consumer runner in a process of its own, for crash tests.

A test kills these processes with SIGKILL: nothing in them gets to clean up,
exactly as when a service's pod is killed.

    python -m rapport_events.testing.worker relay --database-url URL --status PATH
    python -m rapport_events.testing.worker consumer --database-url URL --status PATH \\
        [--hang before-commit|after-commit --after N]

Kafka settings come from the `KAFKA_*` environment. The process appends one
line to the status file when it is running (`ready`) and, with `--hang`, when it
has stopped at the requested point (`hung`) and waits to be killed. The consumer
applies the harness's test handler (one projection row per application) under
the group `downstream`.

`WorkerLauncher` starts these processes from a fork server that has already
imported the library, so a restart costs milliseconds instead of a Python
start-up; each worker is still a separate process with its own connections.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from rapport_events.consumer import ConsumerRunner
from rapport_events.db import create_engine, session_factory
from rapport_events.kafka import create_producer
from rapport_events.relay import OutboxRelay
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import DOWNSTREAM, HANDLERS

HangPoint = Literal["before-commit", "after-commit"]


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process runs."""

    role: Literal["relay", "consumer"]
    database_url: str
    settings: dict[str, Any]
    status_path: str
    hang: HangPoint | None = None
    hang_after: int = 0


def _report(status_path: str, line: str) -> None:
    with open(status_path, "a") as status:
        status.write(line + "\n")
        status.flush()


class _HangingRunner(ConsumerRunner):
    """Stops, without committing anything more, once `after` events are applied.

    `before-commit`: the transactions of the batch committed, its offsets did not.
    `after-commit`: the offsets after those transactions committed too.
    """

    def __init__(self, *, hang: HangPoint, after: int, status_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hang = hang
        self._after = after
        self._status_path = status_path
        self._hung = False

    async def commit_processed(self) -> None:
        if self._hung:
            return
        if self._hang == "after-commit" or self.applied < self._after:
            await super().commit_processed()
        if self.applied >= self._after:
            self._hung = True
            _report(self._status_path, f"hung applied={self.applied}")
            await asyncio.Event().wait()  # until the SIGKILL


async def _run(spec: WorkerSpec) -> None:
    settings = KafkaSettings(**spec.settings)
    engine = create_engine(spec.database_url)
    sessions = session_factory(engine)
    producer = create_producer(settings, client_id=f"worker-{spec.role}-{os.getpid()}")
    await producer.start()
    if spec.role == "relay":
        relay = OutboxRelay(sessions, producer, settings)
        relay.start()
    else:
        kwargs: dict[str, Any] = {
            "service": DOWNSTREAM,
            "settings": settings,
            "session_factory": sessions,
            "handlers": HANDLERS,
            "producer": producer,
        }
        runner: ConsumerRunner = (
            _HangingRunner(
                hang=spec.hang, after=spec.hang_after, status_path=spec.status_path, **kwargs
            )
            if spec.hang
            else ConsumerRunner(**kwargs)
        )
        await runner.start()
    _report(spec.status_path, f"ready pid={os.getpid()}")
    await asyncio.Event().wait()  # until killed


def run_worker(spec: WorkerSpec) -> None:
    """The body of a worker process."""
    # A fork server's child inherits its parent's signal handling; the default is wanted.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    asyncio.run(_run(spec))


class WorkerProcess:
    """One started worker: wait for its status lines, kill it."""

    def __init__(self, process: BaseProcess, status_path: Path) -> None:
        self.process = process
        self.status_path = status_path

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def lines(self) -> list[str]:
        if not self.status_path.exists():
            return []
        return self.status_path.read_text().splitlines()

    def has_reported(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines())

    async def wait_for(self, prefix: str, timeout: float) -> float:
        """Seconds until the worker wrote a status line starting with `prefix`."""
        started = time.monotonic()
        while not self.has_reported(prefix):
            if not self.process.is_alive():
                raise RuntimeError(f"worker {self.pid} exited ({self.process.exitcode})")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"worker {self.pid} did not report {prefix!r} in {timeout}s")
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last commit, connections dropped by the kernel."""
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.join(10)


class WorkerLauncher:
    """Starts workers from a fork server that has the library imported already."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._context: BaseContext = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([__name__])  # type: ignore[attr-defined]
        self._started: list[WorkerProcess] = []

    def start(
        self,
        role: Literal["relay", "consumer"],
        database_url: str,
        settings: KafkaSettings,
        *,
        hang: HangPoint | None = None,
        hang_after: int = 0,
    ) -> WorkerProcess:
        status_path = self.workdir / f"worker-{role}-{len(self._started)}.status"
        spec = WorkerSpec(
            role=role,
            database_url=database_url,
            settings=settings.model_dump(),
            status_path=str(status_path),
            hang=hang,
            hang_after=hang_after,
        )
        process = self._context.Process(target=run_worker, args=(spec,), daemon=True)  # type: ignore[attr-defined]
        process.start()
        worker = WorkerProcess(process, status_path)
        self._started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self._started:
            worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["relay", "consumer"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--status", required=True, help="file to append status lines to")
    parser.add_argument("--hang", choices=["before-commit", "after-commit"])
    parser.add_argument("--after", type=int, default=0, help="hang once this many are applied")
    args = parser.parse_args()
    run_worker(
        WorkerSpec(
            role=args.role,
            database_url=args.database_url,
            settings=KafkaSettings().model_dump(),
            status_path=args.status,
            hang=args.hang,
            hang_after=args.after,
        )
    )


if __name__ == "__main__":
    main()
