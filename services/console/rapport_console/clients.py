"""The console's calls to the four services: in parallel, each with a deadline.

A page asks for everything it shows at once (`fan_out`); a service that is down, slow
or failing costs at most the timeout, and the page renders what the others answered,
marked partial with the name of each service that did not.
"""

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from rapport_console.settings import Settings
from rapport_events.http_transport import traced_transport

log = logging.getLogger(__name__)
SERVICES = ("profile", "campaign", "support", "partner-share")
Params = Mapping[str, str | int] | Sequence[tuple[str, str | int]]
# Connections kept open to each service. Twenty operators' 360 pages make twenty calls at
# once to each; one pool for all four kept twenty connections in all and closed the rest
# after each call, so most calls paid a new TCP connection on both ends: one pool per
# service. The calls go over aiohttp (`rapport_events.http_transport`): httpx's own pool
# cost about 1.4 ms of CPU a call, a fifth of the console's work on a 360 page. An idle
# connection is closed before uvicorn's keep-alive of 5 s would close it under a request
# ("Server disconnected").
CONNECTIONS_PER_SERVICE = 64
KEEPALIVE_S = 2.0


class ServiceUnavailable(Exception):
    """A service did not answer usefully in time."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} {reason}")
        self.service = service
        self.reason = reason


@dataclass(frozen=True)
class Call:
    """One GET of a service's API."""

    service: str
    path: str
    params: Params | None = None
    # Seconds an answer may be reused by later calls (0: always asked afresh).
    cache_s: float = 0.0


@dataclass
class Fanout:
    """What the services answered: JSON per call name (None for 404), and who did not."""

    results: dict[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.unavailable)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.results.get(name)
        return default if value is None else value

    def listed(self, name: str) -> list[Any]:
        """What the call `name` answered when it is a list; empty when it is not there."""
        value = self.results.get(name)
        return value if isinstance(value, list) else []

    def availability(self) -> dict[str, Any]:
        """What every page shows about the services that did not answer."""
        return {"partial": self.partial, "unavailable": self.unavailable}


class ServiceClients:
    """HTTP access to the services with the console's bearer tokens."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.http = {
            service: httpx.AsyncClient(
                transport=transport
                or traced_transport(limit=CONNECTIONS_PER_SERVICE, keepalive_s=KEEPALIVE_S),
                follow_redirects=False,
            )
            for service in SERVICES
        }
        # Answers of calls with `cache_s`, by call: when they expire and the request.
        self._cache: dict[tuple[str, str, str], tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, call: Call) -> Any:
        """The JSON a service answers, None on 404, ServiceUnavailable otherwise."""
        if call.cache_s > 0:
            return await self._cached(call)
        return await self._request("GET", call.service, call.path, params=call.params)

    async def _cached(self, call: Call) -> Any:
        """A fresh enough answer to the same call, else one request shared by all who ask."""
        key = (call.service, call.path, repr(call.params))
        now = time.monotonic()
        held = self._cache.get(key)
        if held is None or held[0] <= now:
            self._drop_expired(now)
            request = self._request("GET", call.service, call.path, params=call.params)
            held = self._cache[key] = (now + call.cache_s, asyncio.ensure_future(request))
        try:
            # Shielded: a page that gives up does not cancel the others' request.
            answer = await asyncio.shield(held[1])
        except BaseException:
            self._forget(key, held)
            raise
        if answer is None or (isinstance(answer, dict) and "error" in answer):
            self._forget(key, held)  # a refusal or a 404 is asked again next time
        return answer

    def _drop_expired(self, now: float) -> None:
        # The cache holds only live answers: it never outgrows the calls asked within cache_s.
        for key in [key for key, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]

    def _forget(self, key: tuple[str, str, str], held: object) -> None:
        if self._cache.get(key) is held:
            del self._cache[key]

    def forget_answers_of(self, service: str) -> None:
        """Drop the cached answers of `service` (after a write that may change them)."""
        for key in [key for key in self._cache if key[0] == service]:
            del self._cache[key]

    async def post(self, service: str, path: str, body: Any) -> Any:
        """POST JSON to a service; its 4xx answer is returned as {"error": ...}."""
        return await self._request("POST", service, path, json=body)

    async def patch(self, service: str, path: str, body: Any) -> Any:
        """PATCH JSON to a service; its 4xx answer is returned as {"error": ...}."""
        return await self._request("PATCH", service, path, json=body)

    async def delete(self, service: str, path: str, timeout_s: float | None = None) -> Any:
        """DELETE on a service; its 4xx answer is returned as {"error": ...}."""
        return await self._request("DELETE", service, path, timeout_s=timeout_s)

    async def get_slow(self, call: Call, timeout_s: float) -> Any:
        """A GET allowed longer than a page's calls (an export gathers from every service)."""
        return await self._request(
            "GET", call.service, call.path, params=call.params, timeout_s=timeout_s
        )

    async def fan_out(self, calls: Mapping[str, Call]) -> Fanout:
        """Every call at once; the page waits at most one timeout, whoever is slow."""
        names = list(calls)
        answers = await asyncio.gather(
            *(self.get(calls[name]) for name in names), return_exceptions=True
        )
        fanout = Fanout()
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, ServiceUnavailable):
                fanout.unavailable.setdefault(answer.service, answer.reason)
                fanout.results[name] = None
            elif isinstance(answer, BaseException):
                raise answer
            else:
                fanout.results[name] = answer
        return fanout

    async def aclose(self) -> None:
        """Close the connections to every service."""
        for http in self.http.values():
            await http.aclose()

    async def _request(
        self, method: str, service: str, path: str, timeout_s: float | None = None, **kwargs: Any
    ) -> Any:
        if method != "GET":
            # What this replica wrote shows on its next page, not after the cache expires.
            self.forget_answers_of(service)
        url = self.settings.url_for(service) + path
        headers = {"Authorization": f"Bearer {self.settings.token_for(service)}"}
        timeout = timeout_s or self.settings.service_timeout_s
        try:
            async with asyncio.timeout(timeout):
                reply = await self.http[service].request(
                    method, url, headers=headers, timeout=timeout, **kwargs
                )
        except TimeoutError:
            raise ServiceUnavailable(service, f"did not answer within {timeout:g} s") from None
        except httpx.HTTPError as error:
            raise ServiceUnavailable(service, f"is unreachable ({type(error).__name__})") from None
        return _answer(service, method, reply)


def _answer(service: str, method: str, reply: httpx.Response) -> Any:
    if reply.status_code == 404 and method == "GET":
        return None
    if reply.status_code in (401, 403):
        log.error("%s refused the console's token (%s)", service, reply.status_code)
        raise ServiceUnavailable(service, "refused the console's token")
    if reply.status_code >= 500:
        raise ServiceUnavailable(service, f"failed ({reply.status_code})")
    if reply.status_code == 204:
        return {}
    try:
        body = reply.json()
    except ValueError:
        raise ServiceUnavailable(service, "answered something other than JSON") from None
    if reply.status_code >= 400:
        return {"error": body, "status": reply.status_code}
    return body
