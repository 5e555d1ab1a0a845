"""The console's clients of the services: an answer asked with `cache_s` is reused while
fresh, shared by callers asking at once, never kept when it is a refusal or a 404, dropped
after a write to its service, and the cache holds only answers still fresh."""

import asyncio
from typing import Any

import httpx
import pytest

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
