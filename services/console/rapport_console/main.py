"""The console: create_app() and the lifespan that owns its database and HTTP client."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport_console.analytics import pages as analytics
from rapport_console.audit import pages as audit
from rapport_console.audit.retention import retention_worker
from rapport_console.campaigns import pages as campaigns
from rapport_console.clients import ServiceClients
from rapport_console.customers import pages as customers
from rapport_console.operators import pages as operators
from rapport_console.operators.service import Directory, LoginLimiter
from rapport_console.operators.sessions import SessionCodec
from rapport_console.partners import pages as partners
from rapport_console.privacy import pages as privacy
from rapport_console.segments import pages as segments
from rapport_console.settings import Settings, get_settings
from rapport_console.support import pages as support
from rapport_console.web import (
    CsrfRejected,
    Forbidden,
    LoginRequired,
    audit_refusal,
    login_redirect,
    render,
)
from rapport_events.db import create_engine, ping, session_factory
from rapport_events.environment import is_development
from rapport_events.migrations import upgrade
from rapport_events.supervisor import Periodic
from rapport_events.tracing import configure_tracing

log = logging.getLogger(__name__)
MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_console"
STATIC = Path(__file__).parent / "static"
# The browser libraries the console serves, from npm's node_modules (never a CDN).
ASSETS = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}
# The audit log's reason for a form whose CSRF token did not match.
CSRF_MISMATCH = "the form's token did not match the session's (a stale form, or not the operator's)"
# Pages load scripts, styles and data from the console only.
CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(
    settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the console; `transport` lets tests answer for the services."""
    settings = settings or get_settings()
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await upgrade(engine, MIGRATIONS, version_table=VERSION_TABLE)
        app.state.engine = engine
        app.state.sessionmaker = session_factory(engine)
        missing = [name for name in ASSETS if not asset_path(settings, name).is_file()]
        if missing:
            log.error("browser libraries missing (run `make console-assets`): %s", missing)
        clients = app.state.clients = ServiceClients(settings, transport)
        app.state.workers = [retention_worker(app.state.sessionmaker, settings).start()]
        try:
            yield
        finally:
            for worker in app.state.workers:
                await worker.stop()
            await clients.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Rapport console",
        description="The web app operators use",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.operators = Directory.from_settings(settings)
    app.state.sessions = SessionCodec(
        settings.session_secret,
        settings.session_max_age_s,
        secure=not is_development(settings.environment),
    )
    app.state.login_limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)
    app.add_middleware(SecurityHeaders)
    _install_error_pages(app)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _install_health(app, settings)
    app.include_router(operators.router)
    app.include_router(customers.router)
    app.include_router(analytics.router)
    app.include_router(segments.router)
    app.include_router(campaigns.router)
    app.include_router(privacy.router)
    app.include_router(support.router)
    app.include_router(partners.router)
    app.include_router(audit.router)
    return app


def asset_path(settings: Settings, name: str) -> Path:
    return Path(settings.assets_dir) / ASSETS[name]


def _install_health(app: FastAPI, settings: Settings) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """The logs' database answers, the browser libraries are installed, and the
        background workers (the logs' retention) do their work."""
        checks: dict[str, str] = {}
        try:
            await ping(request.app.state.engine)
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unavailable: {type(error).__name__} {error}".strip()
        missing = [name for name in ASSETS if not asset_path(settings, name).is_file()]
        checks["assets"] = "ok" if not missing else f"missing: {', '.join(missing)}"
        for worker in request.app.state.workers:
            checks[worker.name] = worker_problem(worker) or "ok"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        """htmx and Chart.js from the installed npm packages."""
        if name not in ASSETS or not asset_path(settings, name).is_file():
            return JSONResponse({"error": "not_found", "message": "no such asset"}, 404)
        return FileResponse(
            asset_path(settings, name),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )


def worker_problem(worker: Periodic) -> str | None:
    """Why a background worker is not doing its work, or None when it is."""
    return worker.supervised.problem() if worker.supervised is not None else "stopped"


def _install_error_pages(app: FastAPI) -> None:
    async def login_required(request: Request, _exc: Exception) -> Response:
        return login_redirect(request)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Forbidden)
        return render(request, "forbidden.html", {"permission": exc.permission}, 403)

    async def csrf_rejected(request: Request, _exc: Exception) -> Response:
        # Recorded, marked as such: the session cookie is SameSite=Lax, so another site's
        # form arrives with no session and never gets here; this is a stale form of the
        # operator's, or a page of the console's own site posting in their name.
        await audit_refusal(request, 403, CSRF_MISMATCH)
        return render(request, "error.html", {"message": "The form expired: reload the page."}, 403)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) for e in exc.errors())
        await audit_refusal(request, 400, f"invalid input: {fields}")
        return render(request, "error.html", {"message": f"Invalid input: {fields}"}, 400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return render(request, "error.html", {"message": str(exc.detail)}, exc.status_code)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


class SecurityHeaders:
    """CSP and framing headers on every answer: the pages run only the console's own code."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CONTENT_POLICY.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


app = create_app
