"""How the tracking API (`/v1/*`) shows in the OpenAPI document: its write key and bodies.

The routes read their bodies themselves (gzip, Segment's own size limits, any content
type), so FastAPI cannot infer a request body or a security scheme: both are declared here.
"""

from typing import Any

from fastapi import FastAPI

from rapport_events.http import declare_security, extend_openapi

WRITE_KEY_SCHEME = "writeKey"


WRITE_KEY = {
    "type": "http",
    "scheme": "basic",
    "description": "A tracking write key (`PROFILE_WRITE_KEYS`) as the HTTP Basic user name, "
    "with an empty password, as Segment's server SDKs send it: `curl -u <write key>: ...`; "
    "or, as analytics.js does, `writeKey` in the JSON body (then no Authorization header).",
}


_CONTEXT = {
    "page": {"url": "https://shop.example.com/x2?utm_source=newsletter", "title": "X2"},
    "campaign": {"source": "newsletter", "medium": "email", "name": "spring-sale"},
    "userAgent": "Mozilla/5.0",
}


EXAMPLES: dict[str, dict[str, Any]] = {
    "identify": {
        "userId": "user-42",
        "anonymousId": "0b6c1a52-3f0e-4a43-9f5c-0d1d5a0d3f10",
        "traits": {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"},
        "messageId": "msg-identify-1",
        "timestamp": "2026-03-01T10:00:00Z",
    },
    "track": {
        "userId": "user-42",
        "event": "Order Completed",
        "properties": {
            "order_id": "o-1",
            "revenue": 349,
            "currency": "EUR",
            "products": [{"product_id": "sku-x2", "price": 349, "quantity": 1}],
        },
        "context": _CONTEXT,
        "messageId": "msg-track-1",
        "timestamp": "2026-03-01T10:05:00Z",
    },
    "page": {
        "anonymousId": "0b6c1a52-3f0e-4a43-9f5c-0d1d5a0d3f10",
        "name": "Product X2",
        "properties": {"url": "https://shop.example.com/x2", "path": "/x2"},
        "context": _CONTEXT,
        "messageId": "msg-page-1",
    },
    "screen": {"userId": "user-42", "name": "Basket", "messageId": "msg-screen-1"},
    "alias": {"previousId": "0b6c1a52-3f0e-4a43-9f5c-0d1d5a0d3f10", "userId": "user-42"},
}


EXAMPLES["batch"] = {
    "batch": [{"type": kind, **message} for kind, message in EXAMPLES.items() if kind != "batch"],
    "sentAt": "2026-03-01T10:05:01Z",
}


MESSAGE_SCHEMA = {
    "type": "object",
    "description": "A Segment message; see Segment's HTTP Tracking API spec for every field.",
    "properties": {
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "event": {"type": "string", "description": "track: the action's name"},
        "name": {"type": "string", "description": "page, screen: the name of the view"},
        "previousId": {"type": "string", "description": "alias: the earlier id"},
        "traits": {"type": "object"},
        "properties": {"type": "object"},
        "context": {"type": "object"},
        "messageId": {"type": "string", "description": "a repeated one is skipped"},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": True,
}


BATCH_SCHEMA = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {
            "type": "array",
            "items": {
                **MESSAGE_SCHEMA,
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": ["identify", "track", "page", "screen", "alias"],
                    },
                    **MESSAGE_SCHEMA["properties"],  # type: ignore[dict-item]
                },
            },
        },
        "sentAt": {"type": "string", "format": "date-time"},
    },
}


def _kind(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _document_bodies(openapi: dict[str, Any]) -> None:
    for path, path_item in openapi.get("paths", {}).items():
        kind = _kind(path)
        if not path.startswith("/v1/") or kind not in EXAMPLES:
            continue
        for operation in path_item.values():
            schema = BATCH_SCHEMA if kind == "batch" else MESSAGE_SCHEMA
            operation.setdefault(
                "requestBody",
                {
                    "required": True,
                    "content": {"application/json": {"schema": schema, "example": EXAMPLES[kind]}},
                },
            )
            reply = operation.get("responses", {}).get("200", {})
            reply.setdefault("content", {}).setdefault("application/json", {})["example"] = {
                "success": True
            }


def document(app: FastAPI) -> None:
    """Declare the write key on every `/v1/*` operation, with a body and its example."""
    declare_security(app, WRITE_KEY_SCHEME, WRITE_KEY, ("/v1/",))
    extend_openapi(app, _document_bodies)
