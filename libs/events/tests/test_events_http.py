"""The shared HTTP error replies are the ones the OpenAPI document describes."""

from typing import Annotated, Any

import httpx
import jsonschema
from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel

from rapport_events import errors
from rapport_events.http import bearer_auth, install_error_handlers
from rapport_events.outbox import EventTooLarge

TOKEN = "http-test-token"


class Item(BaseModel):
    name: str


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/items", dependencies=[Depends(bearer_auth(lambda _request: TOKEN))])
    async def create_item(item: Item, size: Annotated[int, Query(le=10)] = 1) -> Item:
        if item.name == "huge":  # as `outbox.add` refuses an event over the broker's limit
            raise EventTooLarge("rapport.item.created.v1", 1_234_567, 1_000_000)
        return item

    return app


def documented_schema(app: FastAPI, status: str) -> dict[str, object]:
    """The reply schema of POST /items for `status`, its references resolvable."""
    openapi = app.openapi()
    response = openapi["paths"]["/items"]["post"]["responses"][status]
    return {
        **response["content"]["application/json"]["schema"],
        "components": openapi["components"],
    }


async def test_every_refusal_matches_its_documented_schema() -> None:
    app = build_app()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        invalid = await client.post("/items?size=99", json={"name": "x"}, headers=auth)
        unparsable = await client.post(
            "/items", content=b"\xff{", headers={**auth, "content-type": "application/json"}
        )
        anonymous = await client.post("/items", json={"name": "x"})

    for response, status in ((invalid, "422"), (unparsable, "400"), (anonymous, "401")):
        assert response.status_code == int(status), response.text
        jsonschema.validate(response.json(), documented_schema(app, status))
    assert invalid.json()["errors"][0]["loc"] == ["query", "size"]
    assert "HTTPValidationError" not in app.openapi()["components"]["schemas"]


async def test_an_event_over_the_size_limit_is_a_documented_413() -> None:
    app = build_app()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/items", json={"name": "huge"}, headers=auth)

    assert response.status_code == 413, response.text
    body = response.json()
    jsonschema.validate(body, documented_schema(app, "413"))
    assert (body["error"], body["event_type"], body["size"], body["limit"]) == (
        "event_too_large",
        "rapport.item.created.v1",
        1_234_567,
        1_000_000,
    )
    assert "rapport.item.created.v1" in body["message"] and "1234567" in body["message"]


class ItemTaken(errors.Conflict):
    """A service's own refusal, with a field of its own in the reply."""

    def __init__(self, holder: str) -> None:
        super().__init__("the name is taken")
        self.holder = holder

    def details(self) -> dict[str, object]:
        return {"holder": self.holder}


class NoSuchItem(errors.NotFound):
    def message(self) -> str:
        return f"no item {self}"


class ClosedForTheDay(errors.InvalidRequest):
    status_code = 400
    code = "closed"


async def test_a_services_refusals_are_answered_with_their_status_code_and_fields() -> None:
    app = FastAPI()
    install_error_handlers(app)
    refusals = {
        "taken": ItemTaken("c-1"),
        "missing": NoSuchItem("i-9"),
        "closed": ClosedForTheDay("come back tomorrow"),
    }

    @app.get("/items/{name}")
    async def read_item(name: str) -> None:
        raise refusals[name]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        replies = {name: await client.get(f"/items/{name}") for name in refusals}

    assert (replies["taken"].status_code, replies["taken"].json()) == (
        409,
        {
            "error": "conflict",
            "message": "the name is taken",
            "detail": "the name is taken",
            "holder": "c-1",
        },
    )
    assert (replies["missing"].status_code, replies["missing"].json()["message"]) == (
        404,
        "no item i-9",
    )
    assert (replies["closed"].status_code, replies["closed"].json()["error"]) == (400, "closed")


async def test_a_client_gone_before_its_body_arrived_is_a_4xx_not_an_error() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/raw")
    async def read_raw(request: Request) -> dict[str, int]:
        body = b"".join([chunk async for chunk in request.stream()])
        return {"size": len(body)}

    arriving = [
        {"type": "http.request", "body": b'{"event": "Beacon', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return arriving.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/raw",
        "raw_path": b"/raw",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"text/plain")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await app(scope, receive, send)  # raised ClientDisconnect before

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
