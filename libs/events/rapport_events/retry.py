"""Retrying until it works, with exponential backoff: tenacity, set up one way for the kit.

Cancellation is never retried (asyncio's CancelledError is not an Exception), so a task
stopping at shutdown stops at once, whatever it was waiting to retry.

Three loops in the kit keep their own backoff on purpose, because each one's wait depends on
more than the last failure: the supervisor's backoff resets after a task ran healthily for a
while; the consumer's database-outage wait spends none of a message's attempts (an outage is
not the message's fault) and starts again once the database answers; the relay's loop resets
after every published round and leaves the loop to stand by when its lock is lost.
"""

import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

OnFailure = Callable[[BaseException], Awaitable[None]]


def until_done(
    *,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    first_wait_s: float,
    max_wait_s: float,
    log: logging.Logger,
    what: str,
    on_failure: OnFailure | None = None,
) -> AsyncRetrying:
    """Retry on `errors` for ever, waiting `first_wait_s`, then twice as long each time up
    to `max_wait_s`; each failure is logged as a warning and handed to `on_failure`."""

    async def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s failed (%s); retrying in %.1fs", what, error, wait)
        if on_failure is not None and error is not None:
            await on_failure(error)

    return AsyncRetrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=first_wait_s, max=max_wait_s),
        before_sleep=before_sleep,
    )
