"""The cases, in the order they run.

A case is a module with `NAME` (for `--only`), a docstring whose first line
`--list` shows, and `async def run(ctx: bench.core.Context) -> list[bench.core.Result]`.
Add a case by adding its module to CASES.
"""

from types import ModuleType

from bench.cases import (
    baseline,
    consent_partner,
    console_360,
    consumer_inbox,
    end_to_end,
    forecast,
    ingest_batch,
    ingest_sealing,
    outbox_relay,
    read_path,
    replay,
    sales_pipeline,
    segments,
    tracing,
)

CASES: list[ModuleType] = [
    baseline,
    outbox_relay,
    consumer_inbox,
    read_path,
    end_to_end,
    tracing,
    ingest_batch,
    ingest_sealing,
    consent_partner,
    segments,
    replay,
    forecast,
    console_360,
    sales_pipeline,
]
