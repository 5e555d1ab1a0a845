"""Replicas racing in one test: engines of their own on one database, and a peer they call.

Two replicas of a service share its database but not a connection pool, so a test that races
their workers gives each an engine of its own. The peer they call (a platform's webhook,
profile) is a small ASGI app served over real HTTP on loopback.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.db import create_engine
from rapport_events.migrations import upgrade


@asynccontextmanager
async def replica_engines(
    database_url: str, migrations: str, version_table: str, count: int = 2
) -> AsyncIterator[list[AsyncEngine]]:
    """`count` engines (pools) on one database brought to the newest migration."""
    engines = [create_engine(database_url) for _ in range(count)]
    try:
        await upgrade(engines[0], migrations, version_table=version_table)
        yield engines
    finally:
        for engine in engines:
            await engine.dispose()


@asynccontextmanager
async def serving(
    app: Any, port: int, timeout: float = 10.0, lifespan: Literal["auto", "on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve an ASGI app on loopback `port` in this event loop; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
