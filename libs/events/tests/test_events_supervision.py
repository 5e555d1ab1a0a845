"""Supervision: background tasks come back after any failure, and /readyz tells the truth."""

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rapport_events import outbox
from rapport_events.aio import cancel_and_wait
from rapport_events.db import SessionFactory, transaction
from rapport_events.http import health_router
from rapport_events.relay import OutboxRelay
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import RestartPolicy, Supervised
from rapport_events.testing.fakes import FakeProducer
from rapport_events.testing.harness import until
from rapport_events.types import InteractionTracked

FAST = RestartPolicy(initial_backoff_s=0.01, max_backoff_s=0.05, max_restarts=3, window_s=60)


class Flaky:
    """A loop that fails the first `failures` times it starts, then runs until cancelled."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.starts = 0
        self.healthy = asyncio.Event()

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise self.error
        self.healthy.set()
        await asyncio.Event().wait()


class TestSupervised:
    @pytest.mark.parametrize(
        "error", [ValueError("bad"), RecursionError("deep"), MemoryError("full")]
    )
    async def test_any_exception_is_logged_counted_and_the_task_restarted(
        self, error: BaseException, caplog: pytest.LogCaptureFixture
    ) -> None:
        loop = Flaky(failures=2, error=error)
        task = Supervised("flaky", loop.run, policy=FAST).start()
        try:
            await asyncio.wait_for(loop.healthy.wait(), 5)
        finally:
            await task.stop()

        assert (loop.starts, task.restarts) == (3, 2)
        assert task.last_error is not None and type(error).__name__ in task.last_error
        failures = [r for r in caplog.records if r.getMessage().startswith("flaky failed")]
        assert len(failures) == 2
        assert all(r.exc_info and r.exc_info[1] is error for r in failures)

    async def test_a_loop_that_returns_is_restarted_too(self) -> None:
        starts = 0

        async def returns() -> None:
            nonlocal starts
            starts += 1
            if starts > 2:
                await asyncio.Event().wait()

        task = Supervised("returns", returns, policy=FAST).start()
        try:
            await until(lambda: starts == 3, timeout=5, what="a third start")
        finally:
            await task.stop()
        assert task.restarts == 2

    async def test_restarting_too_often_is_a_problem(self) -> None:
        loop = Flaky(failures=10**6, error=ConnectionError("refused"))
        task = Supervised("hopeless", loop.run, policy=FAST).start()
        try:
            assert task.problem() is None
            await until(lambda: task.restarts > FAST.max_restarts, timeout=5, what="restarts")
            problem = task.problem()
        finally:
            await task.stop()
        # Between two tries it is waiting to restart; during one, it has restarted too often.
        assert problem is not None and "ConnectionError" in problem
        assert "restarted" in problem or problem.startswith("restarting after")

    async def test_a_task_waiting_to_restart_is_a_problem_until_it_runs_again(self) -> None:
        loop = Flaky(failures=1, error=ValueError("once"))
        slow = RestartPolicy(initial_backoff_s=0.5, max_backoff_s=0.5, max_restarts=3)
        task = Supervised("slow", loop.run, policy=slow).start()
        try:
            await until(lambda: task.restarts == 1, timeout=5, what="the first failure")
            waiting = task.problem()
            await asyncio.wait_for(loop.healthy.wait(), 5)
            running = task.problem()
        finally:
            await task.stop()
        assert waiting == "restarting after ValueError: once"
        assert running is None

    async def test_a_stopped_task_and_a_stalled_one_are_problems(self) -> None:
        loop = Flaky(failures=0, error=ValueError())
        task = Supervised("idle", loop.run, policy=FAST, stalled=lambda: "no progress").start()
        await asyncio.wait_for(loop.healthy.wait(), 5)
        assert task.problem() == "no progress"
        await task.stop()
        assert task.problem() == "stopped"

    async def test_the_backoff_grows_to_its_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        waits: list[float] = []
        real_sleep = asyncio.sleep

        async def record_sleep(delay: float) -> None:
            waits.append(delay)
            await real_sleep(0)

        monkeypatch.setattr("rapport_events.supervisor.asyncio.sleep", record_sleep)
        loop = Flaky(failures=6, error=ValueError())
        task = Supervised("backoff", loop.run, policy=FAST).start()
        try:
            await asyncio.wait_for(loop.healthy.wait(), 5)
        finally:
            await task.stop()
        assert waits == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05]


def settings(**overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "send_timeout_s": 2.0,
        "relay_poll_interval_s": 0.01,
        "stall_after_s": 0.5,
        **overrides,
    }
    return KafkaSettings(**values)


def events_sent(producer: FakeProducer) -> int:
    """Messages sent to the events topic (a first event of a customer also sends its key)."""
    return sum(1 for message in producer.sent if message.topic == settings().topic)


async def write_event(sessions: SessionFactory, seq: int) -> None:
    async with transaction(sessions) as session:
        outbox.add(
            session,
            InteractionTracked(customer_id="c-1", kind="page", name=f"p{seq}"),
            source="/services/profile",
        )


class TestRelaySupervision:
    async def test_a_purge_that_raises_does_not_stop_publishing(
        self, event_sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        producer = FakeProducer()
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]

        async def locked_purge() -> None:
            raise RuntimeError("database is locked")

        monkeypatch.setattr(relay, "_purge_old", locked_purge)
        relay.start()
        try:
            await until(lambda: relay.purge_failures >= 2, timeout=5, what="failed purges")
            await write_event(event_sessions, 1)
            await until(lambda: events_sent(producer) == 1, timeout=5, what="the event published")
            assert relay.supervised is not None and relay.supervised.problem() is None
        finally:
            await relay.stop()

    async def test_a_relay_that_crashes_is_restarted_and_publishes(
        self, event_sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        producer = FakeProducer()
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]
        real_loop = relay._loop
        crashes = 0

        async def crash_once() -> None:
            nonlocal crashes
            if crashes == 0:
                crashes += 1
                raise RecursionError("a bug in the loop itself")
            await real_loop()

        monkeypatch.setattr(relay, "_loop", crash_once)
        relay.start()
        try:
            await write_event(event_sessions, 1)
            await until(lambda: events_sent(producer) == 1, timeout=5, what="the event published")
        finally:
            await relay.stop()
        assert relay.supervised is None
        assert crashes == 1

    async def test_a_relay_that_cannot_publish_is_reported_stalled(
        self, event_sessions: SessionFactory
    ) -> None:
        producer = FakeProducer(fail_next=10**6)  # the broker refuses everything
        relay = OutboxRelay(event_sessions, producer, settings())  # type: ignore[arg-type]
        await write_event(event_sessions, 1)
        relay.start()
        try:
            await until(
                lambda: relay.supervised is not None and relay.supervised.problem(),
                timeout=5,
                what="the relay reported stalled",
            )
            assert relay.supervised is not None
            problem = relay.supervised.problem()
        finally:
            await relay.stop()
        assert problem is not None and "fake broker unavailable" in problem


class FakeRuntime:
    """What /readyz asks of a runtime, with checks the test sets."""

    def __init__(self, problems: dict[str, str], relay: str = "active") -> None:
        self._problems = problems
        self._relay = relay

    def relay_role(self) -> str:
        return self._relay

    async def check_database(self) -> None:
        return None

    async def check_broker(self) -> None:
        return None

    async def check_tasks(self) -> None:
        if self._problems:
            raise RuntimeError("; ".join(f"{k}: {v}" for k, v in self._problems.items()))


class TestReadyz:
    async def _readyz(self, runtime: FakeRuntime) -> httpx.Response:
        app = FastAPI()
        app.include_router(health_router())
        app.state.runtime = runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get("/readyz")

    async def test_a_stuck_task_makes_it_503_with_the_reason(self) -> None:
        response = await self._readyz(FakeRuntime({"outbox-relay": "stopped"}))
        assert response.status_code == 503
        assert response.json()["checks"]["tasks"].endswith("outbox-relay: stopped")

    async def test_all_well_is_200(self) -> None:
        response = await self._readyz(FakeRuntime({}))
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "tasks": "ok"}
        assert response.json()["relay"] == "active"

    async def test_a_standby_relay_is_ready_and_says_so(self) -> None:
        response = await self._readyz(FakeRuntime({}, relay="standby"))
        assert response.status_code == 200
        assert response.json()["relay"] == "standby"


@pytest.fixture(autouse=True)
def _errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="rapport_events.supervisor")
    caplog.set_level(logging.ERROR, logger="rapport_events.aio")


class TestCancelAndWait:
    async def test_the_tasks_own_cancellation_is_swallowed(self) -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        assert task.cancelled()

    async def test_a_task_that_ignores_its_cancel_is_left_behind_after_the_bound(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        release = asyncio.Event()

        async def deaf() -> None:
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue  # as a client library waiting on a broker that forgot it

        task = asyncio.create_task(deaf())
        await asyncio.sleep(0)
        started = time.monotonic()

        await cancel_and_wait(task, timeout=0.3)

        assert 0.3 <= time.monotonic() - started < 2.0
        assert not task.done()
        assert "did not stop within" in caplog.text
        release.set()
        await task

    async def test_a_caller_cancelled_while_it_waits_is_cancelled_too(self) -> None:
        async def slow_to_unwind() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                await asyncio.shield(asyncio.sleep(0.5))

        task = asyncio.create_task(slow_to_unwind())
        await asyncio.sleep(0)

        async def stopper() -> str:
            await cancel_and_wait(task)
            return "went on as if not cancelled"

        caller = asyncio.create_task(stopper())
        await asyncio.sleep(0.05)
        caller.cancel()  # a stop arrives while it waits

        with pytest.raises(asyncio.CancelledError):
            await caller
