"""An httpx transport on aiohttp: httpx's client API, aiohttp's connection pool and C parser.

httpx's own transport (httpcore: pure-Python HTTP/1.1 over anyio) costs about 1.4 ms of
CPU per request with twenty requests in flight on this project's machines; aiohttp
about 0.1 ms. A caller that makes many calls per request of its own (the console asks
five services for each customer page) keeps httpx's API and its test transports
(`httpx.MockTransport`) and sends over this. Spans: wrap it in OpenTelemetry's
`AsyncOpenTelemetryTransport` (`traced_transport`), as the global httpx instrumentation
patches only httpx's own transport.
"""

import aiohttp
import httpx
from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

# Hop-by-hop or computed by aiohttp from the body it sends.
_NOT_FORWARDED = frozenset({"content-length", "transfer-encoding", "connection", "host"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests over one aiohttp session (opened on first use, on the running loop)."""

    def __init__(self, *, limit: int = 64, keepalive_s: float = 2.0) -> None:
        self._limit = limit
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive_s, enable_cleanup_closed=False
            )
            # The body is handed to httpx as it came, so httpx decodes it (content-encoding)
            # exactly once; cookies stay with the caller's httpx client.
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _NOT_FORWARDED
        ]
        try:
            async with self._opened().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=_timeout_of(request),
            ) as reply:
                content = await reply.read()
        except TimeoutError as error:
            raise httpx.ReadTimeout(f"no answer in time: {error}", request=request) from error
        except aiohttp.ClientConnectorError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        except aiohttp.ClientError as error:
            raise httpx.ReadError(f"{type(error).__name__}: {error}", request=request) from error
        return httpx.Response(
            reply.status,
            headers=list(reply.raw_headers),
            content=content,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (reply.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout_of(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts (connect, read, pool) as aiohttp's."""
    timeouts = request.extensions.get("timeout", {})
    return aiohttp.ClientTimeout(
        sock_connect=timeouts.get("connect"),
        sock_read=timeouts.get("read"),
        connect=timeouts.get("pool"),
    )


def traced_transport(*, limit: int = 64, keepalive_s: float = 2.0) -> httpx.AsyncBaseTransport:
    """An AiohttpTransport whose requests make client spans and carry the trace context."""
    return AsyncOpenTelemetryTransport(AiohttpTransport(limit=limit, keepalive_s=keepalive_s))
