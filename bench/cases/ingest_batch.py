"""Ingest through profile's Segment-compatible `/v1/batch` (waits for that route).

When the route exists, the measurement to add here: events/s accepted by
POST /v1/batch (batches of 100 `track` calls, write key as HTTP Basic user)
until they are in the outbox, against the outbox-relay case's raw produce of the
same number of events; target ≥ 0.5×.
"""

from bench.cases.pending import when_available
from bench.core import Context, Result

NAME = "ingest-batch"
REQUIRED = {"profile": ["/v1/batch"]}


async def run(ctx: Context) -> list[Result]:
    return await when_available("ingest /v1/batch", REQUIRED, None, ctx)
