"""The cases, in the order they run.

A case is a module with `NAME` (for `--only`), a docstring whose first line
`--list` shows, and `async def run(ctx: bench.core.Context) -> list[bench.core.Result]`.
Add a case by adding its module to CASES.
"""

from types import ModuleType

from bench.cases import (
    baseline,
    consent_partner,
    consumer_inbox,
    end_to_end,
    ingest_batch,
    outbox_relay,
    read_path,
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
    consent_partner,
    segments,
]
