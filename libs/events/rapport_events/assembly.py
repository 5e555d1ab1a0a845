"""A service's app assembled from its definition: one lifespan and one app shape for all.

Every service on the event log starts the same way: tracing configured, its database
migrated, the event runtime built, its own clients and workers set up, the runtime
started, the workers watched in `/readyz`; it stops in the reverse order. What differs
is in its `ServiceDefinition`: the description, the handlers, the routers, and a `setup`
that opens its clients and names its workers (an async context manager, so the clients
close after the runtime stops).
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import APIRouter, FastAPI

from rapport_events.consumer import HandlerMap
from rapport_events.http import (
    health_router,
    install_error_handlers,
    instrument_app,
    open_event_runtime,
    service_app,
)
from rapport_events.runtime import EventRuntime, HasSupervised
from rapport_events.service_settings import ServiceSettings
from rapport_events.tracing import configure_tracing


class Worker(Protocol):
    """A service's background work: started under supervision, stopped on shutdown."""

    def start(self) -> HasSupervised | Iterable[HasSupervised]: ...

    async def stop(self) -> None: ...


@dataclass
class Extras:
    """What a service's setup adds to the runtime: its workers, and what must be done once
    the runtime has started and before the service reports ready."""

    workers: Sequence[Worker] = ()
    on_start: Callable[[], Awaitable[None]] | None = None


Setup = Callable[[FastAPI, EventRuntime], AbstractAsyncContextManager[Extras]]


@asynccontextmanager
async def no_setup(_app: FastAPI, _runtime: EventRuntime) -> AsyncIterator[Extras]:
    """A service with no clients or workers of its own."""
    yield Extras()


@dataclass(frozen=True)
class ServiceDefinition:
    """Everything that makes one service different from another at start-up."""

    title: str
    description: str
    tags: list[dict[str, str]]
    migrations: str
    version_table: str
    handlers: HandlerMap
    # Included in this order, which is the order of the paths in /openapi.json.
    routers: Sequence[APIRouter]
    setup: Setup = no_setup
    # Middleware and app state of the service's own, added inside the body size limit
    # and the error handlers, and outside the request spans.
    configure: Callable[[FastAPI], None] | None = None
    dependencies: dict[str, object] = field(default_factory=dict)


def build_app(definition: ServiceDefinition, settings: ServiceSettings) -> FastAPI:
    """The service's FastAPI app: described, guarded, instrumented, its lifespan wired."""
    configure_tracing(settings.service_name)
    app = service_app(
        title=definition.title,
        description=definition.description,
        lifespan=_lifespan(definition, settings),
        tags=definition.tags,
    )
    app.state.settings = settings
    install_error_handlers(app)
    if definition.configure is not None:
        definition.configure(app)
    instrument_app(app)
    app.include_router(health_router())
    for router in definition.routers:
        app.include_router(router)
    return app


def _lifespan(
    definition: ServiceDefinition, settings: ServiceSettings
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_event_runtime(
            app,
            settings,
            migrations=definition.migrations,
            version_table=definition.version_table,
            # An API-only replica publishes but never joins the consumer group.
            handlers=definition.handlers if settings.consume_events else None,
            dependencies={"settings": settings, **definition.dependencies},
        )
        try:
            async with definition.setup(app, runtime) as extras:
                await runtime.start()
                try:
                    if extras.on_start is not None:
                        await extras.on_start()
                    runtime.watch(*_started(extras.workers))
                    yield
                finally:
                    for worker in reversed(extras.workers):
                        await worker.stop()
                    await runtime.stop()
        finally:
            await runtime.engine.dispose()

    return lifespan


def _started(workers: Sequence[Worker]) -> list[HasSupervised]:
    watched: list[HasSupervised] = []
    for worker in workers:
        started = worker.start()
        watched.extend(started if isinstance(started, Iterable) else [started])
    return watched
