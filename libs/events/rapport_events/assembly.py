"""A service's app assembled from its definition: one lifespan and one app shape for all.

Every service on the event log starts the same way: tracing configured, its database
migrated, the event runtime built, its HTTP client opened, its own clients and workers set
up, the runtime started, the workers watched in `/readyz`; it stops in the reverse order.
What differs is in its `ServiceDefinition`: the description, the handlers, the routers, and
a `setup` that builds its clients and names its workers from a `Startup`.

The five definitions in the services' `main.py` still read alike line for line
(`description=DESCRIPTION`, `tags=TAGS`, ..., `handlers=HANDLERS`): they fill the same
fields, each with its own service's values, and that is all they share.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx
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
from rapport_events.supervisor import Periodic
from rapport_events.tracing import configure_tracing

S = TypeVar("S", bound=ServiceSettings)
S_contra = TypeVar("S_contra", bound=ServiceSettings, contravariant=True)


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


@dataclass(frozen=True)
class Startup(Generic[S]):
    """What a service's setup builds on, once its database is migrated and its event
    runtime built."""

    app: FastAPI
    runtime: EventRuntime
    settings: S
    # Every service calls out over HTTP (peers, webhooks): one client, no redirects
    # followed, closed after the workers and the runtime stop.
    http: httpx.AsyncClient
    # What the setup opens besides, closed with the HTTP client (the last opened, first).
    closing: AsyncExitStack

    def periodic(
        self, name: str, step: Callable[[], Awaitable[object]], interval_s: float
    ) -> Periodic:
        """A loop of the service's, restarted under the event runtime's policy."""
        return Periodic(name, step, interval_s, policy=self.settings.kafka.restart_policy())


Setup = Callable[[Startup[Any]], Awaitable[Extras]]


async def no_setup(_startup: Startup[Any]) -> Extras:
    """A service with no clients or workers of its own."""
    return Extras()


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
            async with _startup(app, runtime, settings) as startup:
                extras = await definition.setup(startup)
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


@asynccontextmanager
async def _startup(
    app: FastAPI, runtime: EventRuntime, settings: ServiceSettings
) -> AsyncIterator[Startup[ServiceSettings]]:
    async with AsyncExitStack() as closing:
        http = await closing.enter_async_context(httpx.AsyncClient(follow_redirects=False))
        yield Startup(app, runtime, settings, http, closing)


def _started(workers: Sequence[Worker]) -> list[HasSupervised]:
    watched: list[HasSupervised] = []
    for worker in workers:
        started = worker.start()
        watched.extend(started if isinstance(started, Iterable) else [started])
    return watched


class AppFactory(Protocol[S_contra]):
    """A service's `create_app`: its app, with the settings given or the environment's."""

    def __call__(self, settings: S_contra | None = None) -> FastAPI: ...


def app_factory(definition: ServiceDefinition, get_settings: Callable[[], S]) -> AppFactory[S]:
    """The `create_app` of the service `definition` describes (clients start in the lifespan)."""

    def create_app(settings: S | None = None) -> FastAPI:
        return build_app(definition, settings or get_settings())

    return create_app
