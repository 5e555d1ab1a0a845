"""Segment computation over 100k and 1M profiles on campaign (waits for those routes).

When the routes exist, the measurement to add here: load 100k (quick) / 1M
(full) customer.registered events into campaign's projection, POST /segments with
a rule over attributes, and time until GET /segments/{id}/members is complete;
profiles/s against the consumer-inbox case's raw consume.
"""

from bench.cases.pending import when_available
from bench.core import Context, Result

NAME = "segments"
REQUIRED = {"campaign": ["/segments", "/segments/{id}/members"]}


async def run(ctx: Context) -> list[Result]:
    return await when_available("segment computation", REQUIRED, None, ctx)
