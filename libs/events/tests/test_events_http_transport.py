"""The httpx transport on aiohttp, against a real aiohttp server on a loopback port: what
reaches the server, what the caller reads, and how failures surface (as httpx's errors)."""

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rapport_events.http_transport import AiohttpTransport, traced_transport

pytestmark = pytest.mark.integration
RELEASE = web.AppKey("release", asyncio.Event)


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": body.decode(),
        },
        status=int(request.query.get("status", "200")),
    )


async def _gzipped(_request: web.Request) -> web.Response:
    payload = gzip.compress(json.dumps({"packed": True}).encode())
    return web.Response(
        body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


async def _slow(request: web.Request) -> web.Response:
    await request.app[RELEASE].wait()
    return web.json_response({})


async def _redirect(_request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/echo"})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/gzipped", _gzipped)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/redirect", _redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app[RELEASE].set()  # a slow handler still waiting ends, so the server stops at once
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=2.0) as client:
        yield client


class TestWhatTheServerGets:
    async def test_method_path_query_and_headers(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        reply = await http.get(
            f"{server}/echo", params={"q": "ada lovelace", "n": 2}, headers={"Authorization": "x"}
        )

        got = reply.json()
        assert reply.status_code == 200
        assert (got["method"], got["path"], got["query"]) == (
            "GET",
            "/echo",
            {"q": "ada lovelace", "n": "2"},
        )
        assert got["headers"]["authorization"] == "x"
        assert got["headers"]["host"] == server.removeprefix("http://")

    async def test_a_json_body_arrives_whole_with_its_length(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        body = {"name": "Ada", "tags": ["é", "ü"] * 500}

        got = (await http.post(f"{server}/echo", json=body)).json()

        assert json.loads(got["body"]) == body
        assert int(got["headers"]["content-length"]) == len(got["body"].encode())
        assert got["headers"]["content-type"] == "application/json"


class TestWhatTheCallerReads:
    async def test_the_status_and_headers_as_the_server_sent_them(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        reply = await http.patch(f"{server}/echo", params={"status": "409"})

        assert reply.status_code == 409
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["method"] == "PATCH"

    async def test_a_compressed_body_is_decoded_once(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        reply = await http.get(f"{server}/gzipped")

        assert reply.json() == {"packed": True}

    async def test_a_redirect_is_handed_back_not_followed(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        reply = await http.get(f"{server}/redirect")

        assert (reply.status_code, reply.headers["location"]) == (303, "/echo")

    async def test_many_calls_at_once_each_get_their_own_answer(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        replies = await asyncio.gather(
            *(http.get(f"{server}/echo", params={"n": n}) for n in range(50))
        )

        assert [reply.json()["query"]["n"] for reply in replies] == [str(n) for n in range(50)]


class TestFailures:
    async def test_nothing_listening_is_a_connect_error(self, http: httpx.AsyncClient) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]

        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{closed}/echo")

    async def test_no_answer_within_the_read_timeout_is_a_timeout(
        self, server: str, http: httpx.AsyncClient
    ) -> None:
        with pytest.raises(httpx.TimeoutException):
            await http.get(f"{server}/slow", timeout=0.2)

    async def test_the_transport_opens_again_after_it_was_closed(self, server: str) -> None:
        transport = AiohttpTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(f"{server}/echo")).status_code == 200
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(f"{server}/echo")).status_code == 200
        await transport.aclose()


class TestTracing:
    async def test_a_call_is_a_client_span_and_carries_the_trace(
        self, server: str, span_exporter: InMemorySpanExporter
    ) -> None:
        tracer = trace.get_tracer(__name__)
        async with httpx.AsyncClient(transport=traced_transport()) as http:
            with tracer.start_as_current_span("page") as parent:
                got = (await http.get(f"{server}/echo")).json()

        trace_id = f"{parent.get_span_context().trace_id:032x}"
        assert got["headers"]["traceparent"].split("-")[1] == trace_id
        clients = [
            span
            for span in span_exporter.get_finished_spans()
            if span.kind is SpanKind.CLIENT
            and span.context.trace_id == parent.get_span_context().trace_id
        ]
        assert [span.name for span in clients] == ["GET"]
