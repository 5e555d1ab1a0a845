"""The console's clients of the services: an answer asked with `cache_s` is reused while
fresh, shared by callers asking at once, never kept when it is a refusal or a 404, dropped
after a write to its service, and the cache holds only answers still fresh; over the
network each call carries the console's token and the page's trace."""

import asyncio
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rapport_console.clients import Call, ServiceClients, ServiceUnavailable
from rapport_console.testing import fake_settings


class Counting:
    """A campaign that answers each path with its count of requests so far."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.asked = status, 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.asked += 1
            await asyncio.sleep(0.01)
        return httpx.Response(
            self.status,
            json={"asked": self.asked, "error": "no"}
            if self.status >= 400
            else {"asked": self.asked},
        )


def clients_of(campaign: Counting) -> ServiceClients:
    return ServiceClients(fake_settings(), transport=httpx.MockTransport(campaign.handle))


SEGMENTS = Call("campaign", "/segments", cache_s=30)


async def test_callers_at_once_share_one_request_and_later_ones_its_answer() -> None:
    campaign = Counting()
    clients = clients_of(campaign)

    answers = await asyncio.gather(*(clients.get(SEGMENTS) for _ in range(5)))
    later = await clients.get(SEGMENTS)

    assert answers == [{"asked": 1}] * 5 and later == {"asked": 1}
    assert campaign.asked == 1
    await clients.aclose()


async def test_a_write_to_the_service_drops_its_answers() -> None:
    campaign = Counting()
    clients = clients_of(campaign)
    await clients.get(SEGMENTS)

    await clients.post("campaign", "/segments", {"name": "x"})

    assert await clients.get(SEGMENTS) == {"asked": 2}
    await clients.aclose()


@pytest.mark.parametrize("status", [403, 404, 409, 503])
async def test_a_refusal_a_404_or_a_failure_is_asked_again(status: int) -> None:
    campaign = Counting(status=status)
    clients = clients_of(campaign)

    for _ in range(2):
        try:
            await clients.get(SEGMENTS)
        except ServiceUnavailable:
            assert status in (403, 503)

    assert campaign.asked == 2 and clients._cache == {}
    await clients.aclose()


async def test_the_cache_keeps_only_fresh_answers() -> None:
    campaign = Counting()
    clients = clients_of(campaign)
    fleeting: list[Any] = [Call("campaign", f"/segments/{n}", cache_s=0.01) for n in range(50)]
    for call in fleeting:
        await clients.get(call)
    await asyncio.sleep(0.02)

    await clients.get(SEGMENTS)

    assert len(clients._cache) == 1
    await clients.aclose()


@pytest.mark.integration
async def test_over_the_network_a_call_carries_the_token_and_the_page_s_trace(
    span_exporter: InMemorySpanExporter,
) -> None:
    seen: list[dict[str, str]] = []

    async def campaign(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response([{"id": "s-1", "name": "Buyers"}])

    app = web.Application()
    app.router.add_get("/segments", campaign)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    clients = ServiceClients(fake_settings(campaign_url=url))
    try:
        with trace.get_tracer(__name__).start_as_current_span("page") as page:
            answer = await clients.get(Call("campaign", "/segments"))
    finally:
        await clients.aclose()
        await runner.cleanup()

    assert answer == [{"id": "s-1", "name": "Buyers"}]
    trace_id = page.get_span_context().trace_id
    assert seen[0]["Authorization"] == f"Bearer {fake_settings().token_for('campaign')}"
    assert seen[0]["traceparent"].split("-")[1] == f"{trace_id:032x}"
    calls = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
    assert [s.kind for s in calls if s.name == "GET"] == [SpanKind.CLIENT]
