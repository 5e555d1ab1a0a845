"""What the cases that wait for other features share: a route check before measuring."""

from collections.abc import Awaitable, Callable

from bench.core import Context, Result, skipped
from bench.openapi import missing_routes


async def when_available(
    case: str,
    required: dict[str, list[str]],
    measure: Callable[[Context], Awaitable[list[Result]]] | None,
    ctx: Context,
) -> list[Result]:
    """SKIP "not available yet" until every required route exists; never a made-up number."""
    missing = await missing_routes(required)
    if missing:
        return [skipped(case, "not available yet: no " + ", ".join(missing))]
    if measure is None:
        return [
            skipped(
                case,
                "routes exist; measurement not written yet (see this case's module docstring)",
            )
        ]
    return await measure(ctx)
