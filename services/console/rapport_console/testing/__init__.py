"""The four services faked at the HTTP level, for the console's tests and its bench.

`FakeServices` answers what the console asks with payloads shaped like the services'
own response models (the tests validate them against those models, so the fakes cannot
drift), and can take a service down or make it slow. The payloads are in one module per
service.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from rapport_console.settings import Settings
from rapport_console.testing.campaign import (
    FUNNEL_COUNTS,
    audience,
    campaign,
    campaign_report,
    channels,
    preview,
    segments,
)
from rapport_console.testing.common import CAMPAIGN_ID, CUSTOMER_ID, SEGMENT_ID, at
from rapport_console.testing.partners import disclosures, partner
from rapport_console.testing.profile import (
    consents,
    customer,
    export,
    forecast,
    metrics,
    overview,
    spend,
    tiers,
    timeline_items,
    trends,
)
from rapport_console.testing.support import (
    MENTION_ID,
    comment,
    mention,
    reply,
    support_context,
    ticket,
)
from rapport_console.testing.world import NO_CONTENT, World, is_refusal

__all__ = [
    "CAMPAIGN_ID",
    "CUSTOMER_ID",
    "FUNNEL_COUNTS",
    "PORTS",
    "SEGMENT_ID",
    "TOKEN",
    "MENTION_ID",
    "FakeServices",
    "audience",
    "campaign",
    "campaign_report",
    "channels",
    "consents",
    "comment",
    "customer",
    "disclosures",
    "export",
    "fake_settings",
    "forecast",
    "mention",
    "metrics",
    "overview",
    "partner",
    "preview",
    "reply",
    "segments",
    "spend",
    "stubbed_app",
    "support_context",
    "ticket",
    "tiers",
    "timeline_items",
    "trends",
]

PORTS = {"profile": 18001, "campaign": 18002, "support": 18003, "partner-share": 18004}


TOKEN = "console-test-token-0123456789abcdefghij"


def fake_settings(**overrides: Any) -> Settings:
    """Settings whose service URLs point at the fakes."""
    urls = {
        f"{name.replace('-', '_')}_url": f"http://{name}.test:{port}"
        for name, port in PORTS.items()
    }
    defaults: dict[str, Any] = {
        "environment": "development",
        "api_token": TOKEN,
        "service_timeout_s": 0.5,
    }
    return Settings(**{**defaults, **urls, **overrides})


class FakeServices:
    """An httpx transport that answers as the four services would."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.slow: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.slow_s = 5.0
        self.erased_at: str | None = None
        self.world = World()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @contextmanager
    def service_down(self, name: str) -> Iterator[None]:
        self.down.add(name)
        try:
            yield
        finally:
            self.down.discard(name)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = urlsplit(str(request.url)).hostname or ""
        service = host.removesuffix(".test")
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if service in self.slow:
            await asyncio.sleep(self.slow_s)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": "unauthorized"})
        body = self.respond(request, service)
        if body is None:
            return httpx.Response(404, json={"error": "not_found", "message": "not found"})
        if is_refusal(body):
            return httpx.Response(body["status"], json=body["error"])
        if body is NO_CONTENT:
            return httpx.Response(204)
        return httpx.Response(
            200, content=json.dumps(body), headers={"content-type": "application/json"}
        )

    def respond(self, request: httpx.Request, service: str) -> Any:
        """The JSON body the service answers `request` with, or None for 404."""
        path = request.url.path
        if request.method == "GET":
            return self.answer(service, path, request.url.params)
        if request.method == "DELETE":
            return self.erase(service, path) or self.world.delete(service, path)
        body = json.loads(request.content or b"null")
        if request.method == "PATCH":
            return self.world.patch(service, path, body)
        return self.world.post(service, path, body)

    def answer(self, service: str, path: str, params: httpx.QueryParams) -> Any:
        """The JSON body of one service route, or None for 404."""
        prefix = f"/customers/{CUSTOMER_ID}"
        routes: dict[tuple[str, str], Any] = {
            ("profile", prefix): customer,
            ("profile", f"{prefix}/consents"): consents,
            ("profile", f"{prefix}/metrics"): metrics,
            ("profile", f"{prefix}/timeline"): lambda: {
                "customer_id": CUSTOMER_ID,
                "items": timeline_items(params.get_list("type")),
                "next_cursor": None,
            },
            ("profile", f"{prefix}/overview"): lambda: overview(
                params.get_list("type"), int(params.get("limit", 50))
            ),
            ("profile", "/customers"): lambda: self.search(params),
            ("profile", f"{prefix}/export"): export,
            ("profile", f"{prefix}/erasure"): lambda: self.erasure(completed=True),
            ("profile", "/analytics/trends"): lambda: trends(params),
            ("profile", "/analytics/tiers"): tiers,
            ("profile", "/analytics/forecast"): lambda: forecast(params),
            ("campaign", f"/audience/{CUSTOMER_ID}"): audience,
            ("campaign", "/segments"): segments,
            ("campaign", f"/segments/{SEGMENT_ID}"): lambda: segments()[0],
            ("campaign", f"/segments/{SEGMENT_ID}/members"): lambda: {
                "segment_id": SEGMENT_ID,
                "count": 1,
                "members": [{"customer_id": CUSTOMER_ID, "entered_at": at(3)}],
                "next_cursor": None,
            },
            ("campaign", "/analytics/channels"): channels,
            ("support", f"{prefix}/support-context"): support_context,
            ("partner-share", f"{prefix}/disclosures"): disclosures,
            ("partner-share", "/disclosures"): lambda: (
                disclosures()
                if params.get("partner_id") == "p-1"
                else {"disclosures": [], "next_cursor": None}
            ),
        }
        route = routes.get((service, path))
        return route() if route else self.world.answer(service, path, params)

    def erase(self, service: str, path: str) -> Any:
        """Profile's DELETE /customers/{id}: the erasure starts, pending in the others."""
        if (service, path) != ("profile", f"/customers/{CUSTOMER_ID}"):
            return None
        self.erased_at = at(0)
        return self.erasure(completed=False)

    def erasure(self, completed: bool) -> dict[str, Any] | None:
        if self.erased_at is None:
            return None
        others = ("campaign", "support", "partner-share")
        return {
            "customer_id": CUSTOMER_ID,
            "status": "completed" if completed else "pending",
            "requested_at": self.erased_at,
            "completed_at": self.erased_at if completed else None,
            "services": {
                "profile": self.erased_at,
                **{name: self.erased_at if completed else None for name in others},
            },
            "status_url": f"/customers/{CUSTOMER_ID}/erasure",
        }

    def search(self, params: httpx.QueryParams) -> dict[str, Any]:
        ada = customer()
        matches = (
            params.get("email") == ada["email"]
            or params.get("phone") == ada["phone"]
            or params.get("external_id") == "shop:c-1815"
            or (params.get("q") or "").lower() in ("ada", "lovelace", "ada lovelace")
        )
        items = (
            [{k: v for k, v in ada.items() if k not in ("traits", "accounts")}] if matches else []
        )
        return {"items": items, "next_cursor": None}


def stubbed_app() -> Any:
    """The console with the services answered in-process (no network): the bench's baseline.

    `uvicorn --factory rapport_console.testing:stubbed_app`; the environment still gives
    the database (CONSOLE_DATABASE_URL) and the rest of the settings.
    """
    from rapport_console.main import create_app

    urls = {
        f"{name.replace('-', '_')}_url": f"http://{name}.test:{port}"
        for name, port in PORTS.items()
    }
    settings = Settings(api_token=TOKEN, **urls)  # type: ignore[arg-type]
    return create_app(settings, transport=FakeServices().transport())
