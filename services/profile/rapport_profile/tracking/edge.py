"""What browsers and Segment's SDKs need around the tracking routes (`/v1/*`).

CORS: analytics.js posts from the shop's origin, with an `Authorization` header, so the
browser asks first (preflight); the write key is public by design, so any origin may
send by default (`PROFILE_TRACKING_CORS_ORIGINS`). Only `/v1/*` answers CORS: the rest
of the API is for servers holding a bearer token.

Errors: Segment's SDKs read `{"code", "message"}` from a refusal (analytics-python 1.x and
RudderStack's SDK fail with `KeyError: 'code'` without it) and retry what is not a 4xx;
every error on `/v1/*` carries both, and `retryable` says whether sending again can help.
"""

import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRACKING_PREFIX = "/v1/"


# A refusal that the same request may pass later: a timeout, a rate limit, a server fault.
RETRYABLE = frozenset({408, 429})


def _tracking(scope: Scope) -> bool:
    return scope["type"] == "http" and str(scope.get("path", "")).startswith(TRACKING_PREFIX)


def retryable(status: int) -> bool:
    """Whether a client should send the same call again after this status."""
    return status in RETRYABLE or status >= 500


def segment_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An error body with Segment's `code` and `message`, and whether to retry."""
    code = body.get("code") or body.get("error") or ("server_error" if status >= 500 else "error")
    message = body.get("message") or body.get("detail") or "refused"
    return {**body, "code": str(code), "message": str(message), "retryable": retryable(status)}


class TrackingCors:
    """CORS with preflight on `/v1/*` only, for the configured origins (`*`: any)."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors: ASGIApp | None = (
            CORSMiddleware(
                app,
                allow_origins=origins,
                allow_methods=["POST"],
                allow_headers=["*"],
                # The write key travels in the body or the Authorization header; no cookies.
                allow_credentials=False,
                max_age=7200,
            )
            if origins
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and _tracking(scope):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SegmentErrors:
    """Give every JSON error reply on `/v1/*` Segment's shape (see `segment_error`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _tracking(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def reshaped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is known
                return
            if start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            await _send_reshaped(send, start, bytes(body))

        await self.app(scope, receive, reshaped)


async def _send_reshaped(send: Send, start: Message, raw: bytes) -> None:
    headers = MutableHeaders(raw=list(start.get("headers", [])))
    status = int(start["status"])
    try:
        decoded = json.loads(raw) if "json" in headers.get("content-type", "") else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        payload = segment_error(status, decoded)
    else:
        text = raw.decode(errors="replace").strip()
        payload = segment_error(status, {"error": "error", "message": text or "refused"})
    reply = json.dumps(payload).encode()
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(reply))
    await send({**start, "headers": headers.raw})
    await send({"type": "http.response.body", "body": reply, "more_body": False})
