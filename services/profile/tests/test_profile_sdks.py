"""The real tracking SDKs, unchanged, pointed at profile: Segment's analytics-python,
RudderStack's Python SDK, @segment/analytics-node, and analytics.js in Chromium.

One profile (SQLite, the test broker) serves the whole module on a real port; each test
uses its own user ids and e-mails. The JavaScript SDKs come from the committed
package-lock.json (`npm ci` here when node_modules is missing); analytics.js is bundled
locally with esbuild, configured with its settings inline (no CDN) and run in Debian's
Chromium from a page on another origin.
"""

import asyncio
import base64
import functools
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport_events.testing.broker import TansuBroker
from rapport_events.testing.browser import ONLY_THIS_MACHINE, chromium
from rapport_events.testing.harness import poll_until
from rapport_events.testing.pytest_plugin import test_kafka_settings
from rapport_profile.main import create_app
from rapport_profile.settings import Settings

pytestmark = pytest.mark.e2e

TOKEN = "profile-sdk-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITE_KEY = "sdk-test-write-key"
SDKS = Path(__file__).parent / "sdks"


class Replies:
    """Records (method, path, status, Authorization header) of every reply, and the
    Sec-GPC header of every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int, str]] = []
        self.gpc: list[tuple[str, str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization", b"").decode()
        gpc = headers.get(b"sec-gpc")
        self.gpc.append((scope["method"], scope["path"], gpc.decode() if gpc else None))

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"], authorization))
            await send(message)

        await self.app(scope, receive, recorded)

    def count(self, authorization: str) -> int:
        return sum(1 for *_, given in self.seen if given == authorization)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(app: ASGIApp, port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "profile did not start"
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def replies(
    kafka_broker: TansuBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replies]:
    database = tmp_path_factory.mktemp("sdks") / "profile.db"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        api_token=TOKEN,
        write_keys=[WRITE_KEY],
        kafka=test_kafka_settings(kafka_broker.bootstrap_servers),
        campaign_url="",
        support_url="",
        partner_share_url="",
        sales_url="",
    )
    recorder = Replies(create_app(settings))
    port = _free_port()
    server = _serve(recorder, port)
    recorder.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield recorder
    server.should_exit = True


@pytest.fixture(scope="module")
def profile(replies: Replies) -> str:
    """Profile's base URL."""
    return str(replies.base_url)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The JavaScript SDKs, installed from the committed lockfile when missing."""
    installed = SDKS / "node_modules" / ".package-lock.json"
    if not installed.exists():
        assert shutil.which("npm"), "npm is needed for the JavaScript SDK tests"
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SDKS, check=True, timeout=300)
    return SDKS / "node_modules"


# --- reading back what landed ------------------------------------------------------------


async def customer_by_email(client: httpx.AsyncClient, email: str) -> dict[str, Any] | None:
    found = (await client.get("/customers", params={"email": email}, headers=AUTH)).json()
    if not found["items"]:
        return None
    reply = await client.get(f"/customers/{found['items'][0]['id']}", headers=AUTH)
    return reply.json()  # type: ignore[no-any-return]


async def timeline(client: httpx.AsyncClient, customer_id: str) -> list[dict[str, Any]]:
    reply = await client.get(f"/customers/{customer_id}/timeline?limit=200", headers=AUTH)
    return reply.json()["items"] if reply.status_code == 200 else []


def named(items: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        item["data"]
        for item in items
        if item["type"] == f"rapport.{kind}.v1"
        and (name is None or item["data"].get("name") == name)
    ]


async def landed(
    profile: str, email: str, wanted: Callable[[dict[str, Any], list[dict[str, Any]]], bool]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The customer, their timeline and metrics once `wanted` holds (else what there is)."""
    async with httpx.AsyncClient(base_url=profile, timeout=10) as client:

        async def look() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            customer = await customer_by_email(client, email)
            if customer is None:
                return None
            items = await timeline(client, customer["id"])
            return (customer, items) if wanted(customer, items) else None

        found = await poll_until(look, timeout=30.0, interval=0.2)
        customer = await customer_by_email(client, email)
        assert customer is not None, f"no customer with {email}"
        items = found[1] if found else await timeline(client, customer["id"])
        metrics = (await client.get(f"/customers/{customer['id']}/metrics", headers=AUTH)).json()
        return customer, items, metrics


LEGACY = "Legacy Visit"
SPRING = {"utm_campaign": "spring", "utm_source": "newsletter", "utm_medium": "email"}


def everything_landed(
    account: str, also: str | None = None
) -> Callable[[dict[str, Any], list[Any]], bool]:
    """Identify, the order, the page, the group and the alias (and `also`) are all visible."""

    def check(customer: dict[str, Any], items: list[dict[str, Any]]) -> bool:
        return (
            bool(named(items, "order.completed"))
            and bool(named(items, "interaction.tracked", LEGACY))
            and any(p["kind"] == "page" for p in named(items, "interaction.tracked"))
            and any(a["id"] == account for a in customer["accounts"])
            and (also is None or bool(named(items, "interaction.tracked", also)))
        )

    return check


async def assert_every_call_landed(
    profile: str,
    email: str,
    *,
    first_name: str,
    custom: dict[str, Any],
    account: tuple[str, str],
    revenue: str,
    also: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Wait for the SDK's calls to land, check each, and give the customer and timeline."""
    customer, items, metrics = await landed(profile, email, everything_landed(account[0], also))
    assert customer["first_name"] == first_name
    assert custom.items() <= customer["traits"].items(), customer["traits"]
    assert [(a["id"], a["name"]) for a in customer["accounts"]] == [account]
    assert (metrics["orders"], metrics["revenue"]) == (1, revenue)
    assert named(items, "interaction.tracked", LEGACY), "the aliased id's activity moved over"
    pages = [p for p in named(items, "interaction.tracked") if p["kind"] == "page"]
    assert any(p["utm"] == SPRING for p in pages), pages
    return customer, items


# --- the Python SDKs ----------------------------------------------------------------------


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def python_sdk(client: Any, key: str, profile: str, **options: Any) -> tuple[Any, list[Exception]]:
    """A Segment-style Python client for profile and the errors it reports."""
    errors: list[Exception] = []
    sdk = client(key, host=profile, on_error=lambda e, _b: errors.append(e), **options)
    return sdk, errors


async def flushed(sdk: Any) -> None:
    """Send everything the client queued (both calls block, so off the event loop)."""
    await asyncio.to_thread(sdk.flush)
    await asyncio.to_thread(sdk.join)


async def assert_a_refusal_is_not_retried(
    client: Any, profile: str, replies: Replies, key: str, user_id: str
) -> None:
    """A call with an unknown write key is refused with 401 once, and not sent again."""
    wrong, refused = python_sdk(client, key, profile, max_retries=3)
    wrong.track(user_id, "Clicked")
    await flushed(wrong)
    assert [(e.status, e.code) for e in refused] == [(401, "unauthorized")]  # type: ignore[attr-defined]
    assert replies.count(_basic(key)) == 1, "a 401 is not worth retrying"


class TestSegmentPython:
    async def test_every_call_lands_and_a_refusal_is_not_retried(
        self, profile: str, replies: Replies
    ) -> None:
        from segment.analytics import Client

        sdk, errors = python_sdk(Client, WRITE_KEY, profile, upload_size=20)
        email = "grace.py@example.com"
        sdk.track("py-legacy", LEGACY)
        sdk.identify("py-1", {"email": email, "firstName": "Grace", "plan": "pro", "seats": 7})
        sdk.track(
            "py-1",
            "Order Completed",
            {"order_id": "py-o-1", "revenue": 42, "products": [{"product_id": "p", "price": 42}]},
        )
        sdk.page(
            "py-1",
            "Docs",
            "Install",
            {"url": "https://x.example/i"},
            context={"campaign": {"name": "spring", "source": "newsletter", "medium": "email"}},
        )
        sdk.group("py-1", "py-acme", {"name": "Acme (Python)", "plan": "enterprise"})
        sdk.alias("py-legacy", "py-1")
        await flushed(sdk)
        await assert_a_refusal_is_not_retried(Client, profile, replies, "not-a-key", "py-2")

        await assert_every_call_landed(
            profile,
            email,
            first_name="Grace",
            custom={"plan": "pro", "seats": 7},
            account=("py-acme", "Acme (Python)"),
            revenue="42.00",
        )
        assert errors == []


class TestRudderStackPython:
    async def test_traits_in_context_make_the_customer_and_every_call_lands(
        self, profile: str, replies: Replies
    ) -> None:
        from rudderstack.analytics.client import Client

        sdk, errors = python_sdk(Client, WRITE_KEY, profile, upload_size=20)
        email = "ada.rudder@example.com"
        sdk.track("rs-legacy", LEGACY)
        # RudderStack sends identify's traits in context.traits only.
        sdk.identify("rs-1", {"email": email, "firstName": "Ada", "plan": "team", "seats": 12})
        sdk.track(
            "rs-1",
            "Order Completed",
            {
                "order_id": "rs-o-1",
                "revenue": 18.5,
                "products": [{"product_id": "r", "price": 18.5}],
            },
        )
        sdk.page(
            "rs-1",
            name="Home",
            properties={"url": "https://r.example/"},
            context={"campaign": {"name": "spring", "source": "newsletter", "medium": "email"}},
        )
        sdk.group("rs-1", "rs-acme", {"name": "Acme (Rudder)"})
        sdk.alias("rs-legacy", "rs-1")
        await flushed(sdk)
        await assert_a_refusal_is_not_retried(Client, profile, replies, "bad-rudder-key", "rs-2")

        await assert_every_call_landed(
            profile,
            email,
            first_name="Ada",
            custom={"plan": "team", "seats": 12},
            account=("rs-acme", "Acme (Rudder)"),
            revenue="18.50",
        )
        assert errors == []


# --- @segment/analytics-node --------------------------------------------------------------


class TestAnalyticsNode:
    async def test_every_call_lands(self, profile: str, node_modules: Path) -> None:
        email = "node@example.com"
        sent = await asyncio.create_subprocess_exec(
            "node",
            str(SDKS / "analytics_node.mjs"),
            profile,
            WRITE_KEY,
            email,
            cwd=SDKS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sent.communicate(), 60)
        assert sent.returncode == 0, err.decode()
        assert json.loads(out.decode().strip().splitlines()[-1]) == {"failures": []}

        await assert_every_call_landed(
            profile,
            email,
            first_name="Node",
            custom={"plan": "pro", "seats": 3},
            account=("node-acme", "Acme (Node)"),
            revenue="75.00",
        )


# --- analytics.js in Chromium --------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title><link rel="icon" href="data:,">
<script src="/analytics.js"></script></head>
<body><h1>Spring sale</h1></body></html>
"""


@pytest.fixture(scope="module")
def shop(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shop's page and analytics.js bundled from npm, on an origin of its own."""
    root = tmp_path_factory.mktemp("shop")
    subprocess.run(
        [
            str(node_modules / ".bin" / "esbuild"),
            str(SDKS / "browser_entry.js"),
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--log-level=warning",
            f"--outfile={root / 'analytics.js'}",
        ],
        cwd=SDKS,
        check=True,
        timeout=120,
    )
    (root / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *_args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def run_shop_page(
    profile: str,
    shop: str,
    *,
    email: str,
    prefix: str,
    batching: bool,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Open the shop's page in Chromium and run shop.js; what it returned, the requests
    that went anywhere but the two origins, and the page's errors. `headers` go on every
    request the browser makes, as a browser setting adds its own (Sec-GPC)."""
    elsewhere: list[str] = []
    problems: list[str] = []
    async with chromium([ONLY_THIS_MACHINE]) as browser:
        context = await browser.new_context(extra_http_headers=headers or {})
        page = await context.new_page()
        # Requests are watched, not intercepted: Playwright would answer the CORS
        # preflight of an intercepted request itself, and profile's must be tested.
        page.on(
            "request",
            lambda r: None if r.url.startswith((shop, profile)) else elsewhere.append(r.url),
        )
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        beacons: list[Any] = []
        page.on(
            "requestfinished",
            lambda r: beacons.append(r) if "Beacon Sent" in (r.post_data or "") else None,
        )
        await page.goto(f"{shop}/?utm_campaign=spring&utm_source=newsletter&utm_medium=email")
        result = await page.evaluate(
            (SDKS / "shop.js").read_text(),
            {
                "profile": profile,
                "writeKey": WRITE_KEY,
                "email": email,
                "prefix": prefix,
                "batching": batching,
            },
        )
        # Let a batch's timer fire before the page goes.
        await asyncio.sleep(1.0 if batching else 0)
        # The beacon is sent after the script returns: closing the browser first would cut
        # its request off mid-body.
        if result.get("beacon"):

            async def beacon_done() -> int:
                return len(beacons)

            await poll_until(beacon_done, timeout=10.0, interval=0.05)
    return result, elsewhere, problems


async def track_legacy_visit(profile: str, user_id: str) -> None:
    """Activity under an id that analytics.js's alias then folds into the customer."""
    async with httpx.AsyncClient(base_url=profile) as client:
        legacy = await client.post(
            "/v1/track",
            json={"userId": user_id, "event": LEGACY},
            headers={"Authorization": _basic(WRITE_KEY)},
        )
        assert legacy.status_code == 200, legacy.text


class TestAnalyticsJsInChromium:
    async def test_a_page_on_another_origin_lands_every_call(
        self, profile: str, shop: str, replies: Replies
    ) -> None:
        await track_legacy_visit(profile, "web-legacy")
        email = "hedy.web@example.com"

        result, elsewhere, problems = await run_shop_page(
            profile, shop, email=email, prefix="web", batching=False
        )
        customer, items = await assert_every_call_landed(
            profile,
            email,
            first_name="Hedy",
            custom={"plan": "pro", "seats": 2},
            account=("web-acme", "Acme (web)"),
            revenue="120.00",
            also="Beacon Sent",
        )

        assert result["beacon"] is True
        assert [kind for kind, _ in result["sent"]] == [
            "page",
            "identify",
            "track",
            "group",
            "alias",
        ]
        assert [failure for _, failure in result["sent"]] == [None] * 5
        assert elsewhere == [], "analytics.js reached for something other than profile"
        assert problems == []
        # The browser asked first (the Authorization header needs a preflight) and was let in.
        asked = {path for method, path, status, _ in replies.seen if method == "OPTIONS"}
        assert {"/v1/p", "/v1/i", "/v1/t", "/v1/g", "/v1/a"} <= asked
        posted = {path for method, path, status, _ in replies.seen if method == "POST"}
        assert {"/v1/p", "/v1/i", "/v1/t", "/v1/g", "/v1/a"} <= posted
        assert customer["acquisition_channel"] == "email"  # the page before identify
        assert named(items, "interaction.tracked", "Beacon Sent")

    async def test_the_batching_strategy_lands_every_call_through_v1_b(
        self, profile: str, shop: str, replies: Replies
    ) -> None:
        await track_legacy_visit(profile, "batch-legacy")
        email = "hedy.batch@example.com"

        _result, elsewhere, problems = await run_shop_page(
            profile, shop, email=email, prefix="batch", batching=True
        )
        await assert_every_call_landed(
            profile,
            email,
            first_name="Hedy",
            custom={"plan": "pro", "seats": 2},
            account=("batch-acme", "Acme (batch)"),
            revenue="120.00",
            also="Beacon Sent",
        )
        assert (elsewhere, problems) == ([], [])
        assert ("POST", "/v1/b") in {(method, path) for method, path, *_ in replies.seen}

    async def test_a_browser_with_global_privacy_control_refuses_sharing(
        self, profile: str, shop: str, replies: Replies
    ) -> None:
        await track_legacy_visit(profile, "gpc-legacy")
        email = "hedy.gpc@example.com"

        _result, elsewhere, problems = await run_shop_page(
            profile, shop, email=email, prefix="gpc", batching=False, headers={"Sec-GPC": "1"}
        )
        customer, _items = await assert_every_call_landed(
            profile,
            email,
            first_name="Hedy",
            custom={"plan": "pro", "seats": 2},
            account=("gpc-acme", "Acme (gpc)"),
            revenue="120.00",
            also="Beacon Sent",
        )

        assert (elsewhere, problems) == ([], [])
        sent = {path for method, path, gpc in replies.gpc if method == "POST" and gpc == "1"}
        assert {"/v1/p", "/v1/i", "/v1/t"} <= sent  # the browser sent it on analytics.js's calls
        async with httpx.AsyncClient(base_url=profile, headers=AUTH) as client:
            reply = await client.get(f"/customers/{customer['id']}/consents")
        receipt = reply.json()
        assert [(c["purpose"], c["partner_id"], c["granted"]) for c in receipt["consents"]] == [
            ("partner_sharing", None, False)
        ]
        assert [h["source"] for h in receipt["history"]] == ["gpc_header"]
