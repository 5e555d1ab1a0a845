"""`rapport_events.retry.until_done`: the backoff every retry loop of the kit uses."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from rapport_events.retry import until_done

log = logging.getLogger(__name__)


class Flaky:
    """Fails with `error` the first `failures` calls, then answers `done`."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.calls = 0
        self.failures = failures
        self.error = error

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


class TestUntilDone:
    async def test_retries_the_listed_errors_until_the_call_succeeds(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        flaky = Flaky(3, ConnectionError("broker away"))
        seen: list[BaseException] = []

        async def on_failure(error: BaseException) -> None:
            seen.append(error)

        retrying = until_done(
            errors=OSError,
            first_wait_s=0.001,
            max_wait_s=0.004,
            log=log,
            what="reaching the broker",
            on_failure=on_failure,
        )
        with caplog.at_level(logging.WARNING):
            assert await retrying(flaky) == "done"

        assert flaky.calls == 4
        assert [str(error) for error in seen] == ["broker away"] * 3
        waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert (
            waits
            == [
                "reaching the broker failed (broker away); retrying in 0.0s",
            ]
            * 3
        )

    async def test_waits_double_up_to_the_cap(self) -> None:
        flaky = Flaky(5, TimeoutError())
        waits: list[float] = []
        retrying = until_done(
            errors=TimeoutError, first_wait_s=0.001, max_wait_s=0.004, log=log, what="x"
        )
        retrying.sleep = _recording(waits)  # type: ignore[method-assign]
        await retrying(flaky)
        assert waits == [0.001, 0.002, 0.004, 0.004, 0.004]

    async def test_another_error_is_raised_at_once(self) -> None:
        flaky = Flaky(1, ValueError("a bug, not an outage"))
        retrying = until_done(
            errors=OSError, first_wait_s=0.001, max_wait_s=0.01, log=log, what="x"
        )
        with pytest.raises(ValueError, match="a bug"):
            await retrying(flaky)
        assert flaky.calls == 1

    async def test_cancelling_stops_the_retries(self) -> None:
        flaky = Flaky(10**9, OSError("never up"))
        retrying = until_done(errors=OSError, first_wait_s=0.01, max_wait_s=0.01, log=log, what="x")
        task = asyncio.create_task(retrying(flaky))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        calls = flaky.calls
        await asyncio.sleep(0.05)
        assert flaky.calls == calls  # nothing runs after the cancellation


def _recording(waits: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return sleep
