"""Supervised background work: every long-running task of a service runs under one of these.

A task that raises (any exception, `RecursionError` and `MemoryError` included) or
returns is logged with its traceback, counted, and started again after a backoff that
doubles up to a bound and starts over once a run has lasted a while. `/readyz` asks each
task for its `problem()`: restarting too often, stopped, or no progress for longer than
its stall limit while it has work.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rapport_events.aio import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervised task is restarted, and when its restarts make the service unready."""

    initial_backoff_s: float = 0.1
    max_backoff_s: float = 30.0
    # A run that lasted this long counts as healthy: the next failure backs off from the start.
    healthy_after_s: float = 30.0
    # More restarts than this within the window, and /readyz says the task restarts too often.
    max_restarts: int = 3
    window_s: float = 60.0


class Supervised:
    """One long-running coroutine, restarted whenever it fails, with what /readyz needs.

    `stalled` (optional) returns why the task is stuck although it runs (no progress
    while work waits), or None.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[object]],
        *,
        policy: RestartPolicy | None = None,
        stalled: Callable[[], str | None] | None = None,
        on_restart: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self._policy = policy or RestartPolicy()
        self._stalled = stalled
        self._on_restart = on_restart
        self._task: asyncio.Task[None] | None = None
        self._recent_failures: deque[float] = deque()
        self._backing_off = False
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> "Supervised":
        self._task = asyncio.create_task(self._supervise(), name=self.name)
        return self

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def problem(self) -> str | None:
        """Why this task is not doing its work, or None when it is."""
        if not self.running:
            return "stopped"
        if self._backing_off:
            return f"restarting after {self.last_error}"
        now = time.monotonic()
        self._forget_failures_before(now - self._policy.window_s)
        if len(self._recent_failures) > self._policy.max_restarts:
            return (
                f"restarted {len(self._recent_failures)} times in "
                f"{self._policy.window_s:.0f}s; last error: {self.last_error}"
            )
        return self._stalled() if self._stalled is not None else None

    def _forget_failures_before(self, cutoff: float) -> None:
        while self._recent_failures and self._recent_failures[0] < cutoff:
            self._recent_failures.popleft()

    async def _supervise(self) -> None:
        backoff = self._policy.initial_backoff_s
        while True:
            began = time.monotonic()
            try:
                await self._run()
                error: BaseException = RuntimeError(f"{self.name} returned; it should run forever")
            except asyncio.CancelledError:
                raise
            except Exception as failure:  # anything at all: the task must come back
                error = failure
            if time.monotonic() - began >= self._policy.healthy_after_s:
                backoff = self._policy.initial_backoff_s
            self._record(error, backoff)
            self._backing_off = True
            try:
                await asyncio.sleep(backoff)
            finally:
                self._backing_off = False
            backoff = min(backoff * 2, self._policy.max_backoff_s)

    def _record(self, error: BaseException, backoff: float) -> None:
        self.restarts += 1
        self._recent_failures.append(time.monotonic())
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        log.error(
            "%s failed; restarting in %.1fs",
            self.name,
            backoff,
            exc_info=(type(error), error, error.__traceback__),
            extra={"task": self.name, "restarts": self.restarts},
        )
        if self._on_restart is not None:
            self._on_restart(error)


class Heartbeat:
    """When a loop last completed a round; stale while work waits means the loop is stuck."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def age_s(self) -> float:
        return time.monotonic() - self.last


class Periodic:
    """A service's background loop under supervision: `step` runs at once again while it
    reports work done (when `repeat_while_busy`), else after `interval_s` or when woken.

    A step that raises is the supervisor's to log, count and restart with backoff; a step
    that hangs past `stall_after_s` makes /readyz say so.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        policy: RestartPolicy | None = None,
        stall_after_s: float | None = None,
        repeat_while_busy: bool = True,
    ) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._policy = policy
        self._stall_after_s = stall_after_s or max(60.0, 10 * interval_s)
        self._repeat_while_busy = repeat_while_busy
        self._wake = asyncio.Event()
        self._heartbeat = Heartbeat()
        self.supervised: Supervised | None = None

    def start(self) -> "Periodic":
        self._heartbeat.beat()
        self.supervised = Supervised(
            self.name, self._loop, policy=self._policy, stalled=self._stall_reason
        ).start()
        return self

    def wake(self) -> None:
        """Run the step now rather than at the next interval."""
        self._wake.set()

    async def stop(self) -> None:
        if self.supervised is not None:
            await self.supervised.stop()
            self.supervised = None

    def _stall_reason(self) -> str | None:
        age = self._heartbeat.age_s()
        if age > self._stall_after_s:
            return f"no step completed for {age:.0f}s"
        return None

    async def _loop(self) -> None:
        while True:
            busy = await self._step()
            self._heartbeat.beat()
            if busy and self._repeat_while_busy:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
