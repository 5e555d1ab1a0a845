"""What every service's HTTP side shares: the app, offline docs, health, bearer auth, JSON
errors, instrumentation.

A little over 500 lines: the error replies are documented in the OpenAPI document of the
app they are installed on, and both steps stay beside the app they change."""

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport_events import observability
from rapport_events.consumer import HandlerMap
from rapport_events.db import create_engine
from rapport_events.errors import Refusal
from rapport_events.limits import DEFAULT_MAX_BODY_BYTES
from rapport_events.migrations import upgrade
from rapport_events.outbox import EventTooLarge
from rapport_events.runtime import EventRuntime
from rapport_events.tracing import untraced

log = logging.getLogger(__name__)
BEARER_SCHEME = "bearer"
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    description="Internal callers and operators: `Authorization: Bearer <token>`, the token "
    "of the service's `API_TOKEN` setting (`make run` prints the development one).",
)
# Swagger UI and ReDoc as files of a Python package: /docs and /redoc need no network.
DOCS_ASSETS_PATH = "/docs/assets"
DOCS_ASSETS = resources.files("fastapi_offline") / "static"
# The pages may load nothing from elsewhere (ReDoc's footer logo would come from its CDN).
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def service_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    version: str = "0.1.0",
    tags: list[dict[str, str]] | None = None,
) -> FastAPI:
    """A service's FastAPI app: described, with /docs and /redoc served from local files."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=[{"name": "health", "description": "Probes: process up, dependencies ready"}]
        + (tags or []),
    )
    install_offline_docs(app)
    return app


def install_offline_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` from the package's files, never from a CDN."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_ASSETS_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - API",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - API",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page


def summary_is_generated(operation: dict[str, Any]) -> bool:
    """Whether an operation's summary is FastAPI's own: its function's name in title case
    (the operation id starts with that name)."""
    generated = str(operation.get("summary", "")).lower().replace(" ", "_")
    return not generated or str(operation.get("operationId", "")).lower().startswith(generated)


def summarise_operations(openapi: dict[str, Any]) -> None:
    """An operation without a summary of its own takes the first line of its docstring."""
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            description = str(operation.get("description", "")).strip()
            if description and summary_is_generated(operation):
                first = description.partition("\n\n")[0]
                operation["summary"] = " ".join(first.split()).rstrip(".")


def _segment(value: str) -> str:
    escaped = quote(value, safe="")
    # `.` and `..` are left as they are by quote, and the client would resolve them.
    return escaped.replace(".", "%2E") if value in (".", "..") else escaped


def peer_url(base_url: str, *segments: str) -> str:
    """`base_url` joined with path segments, each escaped whole (`/`, `?`, `%` included)."""
    return f"{base_url.rstrip('/')}/{'/'.join(_segment(segment) for segment in segments)}"


READY_EXAMPLE = {
    "status": "ready",
    "checks": {"database": "ok", "broker": "ok", "tasks": "ok"},
}
NOT_READY_EXAMPLE = {
    "status": "not ready",
    "checks": {
        "database": "ok",
        "broker": "ok",
        "tasks": "unavailable: RuntimeError outbox-relay: no publishing round completed for "
        "61s; last error: KafkaTimeoutError: ...",
    },
}


def health_router() -> APIRouter:
    """`/healthz` (process up) and `/readyz` (database and broker reachable)."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/healthz",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get(
        "/readyz",
        responses={
            200: {"content": {"application/json": {"example": READY_EXAMPLE}}},
            503: {
                "description": "a dependency is unreachable or a background task is stuck",
                "content": {"application/json": {"example": NOT_READY_EXAMPLE}},
            },
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        """The database and the broker answer, and every background task runs and progresses."""
        runtime: EventRuntime = request.app.state.runtime
        checks = {
            "database": runtime.check_database,
            "broker": runtime.check_broker,
            "tasks": runtime.check_tasks,
        }
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                # The probe itself is not traced, so its queries would be parentless traces.
                with untraced():
                    await check()
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__} {error}".strip()
        ready = all(value == "ok" for value in results.values())
        # A standby relay is no problem: the replica serves requests, and its relay takes
        # over when the active one goes away.
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "checks": results,
                "relay": runtime.relay_role(),
            },
            status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return router


def bearer_auth(expected_token: Callable[[Request], str]) -> Callable[..., Any]:
    """A dependency that accepts only `Authorization: Bearer <expected token>`."""

    async def _check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not secrets.compare_digest(
            credentials.credentials.encode(), expected_token(request).encode()
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return "internal"

    return _check


def _error(status_code: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message, "detail": message, **extra},
        status_code=status_code,
    )


class FieldError(BaseModel):
    """One invalid field of a request: where, what is wrong, the kind of error."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorReply(BaseModel):
    """Every error reply: a code, a readable message (repeated as `detail`), and extras."""

    error: str
    message: str
    detail: str
    errors: list[FieldError] | None = None


ERROR_SCHEMA_REF = "#/components/schemas/ErrorReply"
FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }


def _document_error_replies(openapi: dict[str, Any]) -> None:
    """Describe the error replies the handlers below really send, on every operation."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldError, ErrorReply):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                content = response.get("content", {}).get("application/json", {})
                uses_fastapi_shape = content.get("schema", {}).get("$ref") == FASTAPI_VALIDATION_REF
                if code.startswith("4") and (uses_fastapi_shape or "content" not in response):
                    responses[code] = _error_response(response.get("description", "refused"))
            if "requestBody" in operation:
                responses.setdefault("400", _error_response("the body is not valid JSON"))
                responses.setdefault(
                    "413",
                    _error_response(
                        "the body is larger than allowed, or an event it makes is over the "
                        "broker's limit"
                    ),
                )
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                responses.setdefault("404", _error_response("nothing found at this path"))
            if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
                responses.setdefault("400", _error_response("the cursor is not one this API gave"))
            if operation.get("security"):
                responses.setdefault("401", _error_response("missing or wrong credentials"))
    components.pop("HTTPValidationError", None)


OpenApiStep = Callable[[dict[str, Any]], None]


def extend_openapi(app: FastAPI, step: OpenApiStep) -> None:
    """Have `step` complete the OpenAPI document when it is built (before errors are added)."""
    steps: list[OpenApiStep] = getattr(app.state, "openapi_steps", [])
    app.state.openapi_steps = [*steps, step]


def declare_security(
    app: FastAPI, name: str, scheme: dict[str, Any], path_prefixes: tuple[str, ...]
) -> None:
    """Declare a security scheme and require it on the operations under `path_prefixes`.

    For routes that check their credentials themselves rather than through a FastAPI
    security dependency (which would declare it on its own).
    """

    def step(openapi: dict[str, Any]) -> None:
        components = openapi.setdefault("components", {}).setdefault("securitySchemes", {})
        components[name] = scheme
        for path, path_item in openapi.get("paths", {}).items():
            if path.startswith(path_prefixes):
                for operation in path_item.values():
                    operation["security"] = [{name: []}]

    extend_openapi(app, step)


def _with_documented_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            summarise_operations(document)
            for step in getattr(app.state, "openapi_steps", []):
                step(document)
            _document_error_replies(document)
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi


class BodyTooLarge(HTTPException):
    """A request body past the service's cap (FastAPI passes HTTPExceptions through)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodySizeLimit:
    """Refuse a request body over `max_bytes` with 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refusal = BodyTooLarge(self.max_bytes).detail
            await _error(413, "too_large", refusal)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON `{error, message, ...}`; bad input is a 4xx, never a 500.

    Request bodies are capped at `app.state.settings.max_body_bytes` (413 past it).
    """
    app.openapi = _with_documented_errors(app)  # type: ignore[method-assign]
    settings = getattr(app.state, "settings", None)
    max_bytes = getattr(settings, "max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return _error(422, "validation_error", summary or "invalid request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "too_large",
            429: "rate_limited",
        }.get(exc.status_code, "error")
        response = _error(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(ClientDisconnect)
    async def _gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client left before sending its whole body (a browser closing a page under a
        # beacon): nothing was read or changed, and nobody is left to answer.
        log.info("the client went away before its request body was read")
        return _error(400, "client_disconnected", "the request body did not arrive whole")

    @app.exception_handler(Refusal)
    async def _refusal(_request: Request, exc: Refusal) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message(), **exc.details())

    @app.exception_handler(EventTooLarge)
    async def _event_too_large(_request: Request, exc: EventTooLarge) -> JSONResponse:
        # The event could never be published: refused here, it cannot block the outbox.
        return _error(
            413,
            "event_too_large",
            str(exc),
            event_type=exc.event_type,
            size=exc.size,
            limit=exc.limit,
        )

    @app.exception_handler(DBAPIError)
    async def _unstorable(_request: Request, exc: DBAPIError) -> JSONResponse:
        # PostgreSQL text cannot hold NUL characters; SQLite can, so this is bad input.
        if "0x00" not in str(exc.orig):
            raise exc
        return _error(422, "validation_error", "text must not contain NUL (\\u0000) characters")

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error mapped to 409: %s", exc.orig)
        return _error(409, "conflict", "the request conflicts with stored data")


def instrument_app(app: FastAPI) -> None:
    """Spans and request metrics for every request, httpx client spans, JSON logs, `/metrics`.

    The service name comes from `app.state.settings.service_name` (else the app title).
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    settings = getattr(app.state, "settings", None)
    observability.setup(getattr(settings, "service_name", None) or app.title)
    excluded = [observability.EXCLUDED_URLS]
    # The standard variables still add to the probes and the scrape.
    for variable in ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        if os.environ.get(variable):
            excluded.append(os.environ[variable])
            break
    # No per-message ASGI "http send"/"http receive" spans: one server span per request.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=",".join(excluded), exclude_spans=["receive", "send"]
    )
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument()
    observability.mount_metrics(app)


def instrument_engine(target: EventRuntime | AsyncEngine) -> None:
    """Spans for every database query of the service (its runtime's engine, or another)."""
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    # SQLAlchemyInstrumentor().instrument(engine=...) works once per process, so a
    # second engine (tests, several apps in one process) would go untraced.
    EngineTracer(
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"),
        (target.engine if isinstance(target, EventRuntime) else target).sync_engine,
        metrics.get_meter("opentelemetry.instrumentation.sqlalchemy").create_up_down_counter(
            "db.client.connections.usage",
            unit="connections",
            # Without one the Prometheus exposition has an empty HELP line.
            description="Database connections of the pool in each state (used, idle)",
        ),
    )


async def open_event_runtime(
    app: FastAPI,
    settings: Any,
    *,
    migrations: str,
    version_table: str,
    handlers: HandlerMap | None,
    dependencies: Mapping[str, Any] | None = None,
) -> EventRuntime:
    """A service's database migrated and its event runtime built, traced and on
    `app.state.runtime`; the lifespan starts it once its own clients are ready.

    `settings` is the service's: `database_url`, `service_name` and `kafka` are read."""
    engine = create_engine(settings.database_url)
    await upgrade(engine, migrations, version_table=version_table)
    runtime = EventRuntime(
        service=settings.service_name,
        engine=engine,
        settings=settings.kafka,
        handlers=handlers,
        dependencies=dependencies,
    )
    instrument_engine(runtime)
    app.state.runtime = runtime
    return runtime
