"""Small asyncio helpers."""

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
# How long a stop waits for a cancelled task to unwind before it goes on without it.
UNWIND_TIMEOUT_S = 15.0


async def cancel_and_wait(
    task: "asyncio.Task[Any] | None", timeout: float = UNWIND_TIMEOUT_S
) -> None:
    """Cancel a background task and wait until it has finished unwinding, for at most
    `timeout` seconds: a task that ignores its cancel (a client library waiting on a broker
    that no longer answers) is logged and left behind, so a shutdown always ends.

    Only `task`'s cancellation is swallowed: if the caller is cancelled meanwhile (a stop
    that lands while it waits), that cancellation goes on, or the caller would never stop.
    An exception the task ended with is raised here, as awaiting it would.
    """
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.error("task %s did not stop within %.0fs of its cancel; left behind", task, timeout)
        return
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
