"""A service app with its lifespan on its own database and no broker, for fast route tests.

The runtime keeps trying to reach a port nothing listens on; requests are served and
their events wait in the outbox, as they do while a real broker is down.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port


def unreachable_kafka() -> KafkaSettings:
    """Kafka settings naming a port where no broker listens."""
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=1000)


@asynccontextmanager
async def offline_client(
    app: FastAPI, base_url: str = "http://service"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `app` over ASGI, inside the app's lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
