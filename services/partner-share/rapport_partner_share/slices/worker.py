"""The filler: asks profile over HTTP for the slices a new consent covers, then stores them
only if the consent is still the same (see `fills.complete_fill`).

It runs outside any request or event's transaction and polls the database, so a fill
queued by a transaction that committed is never lost to a crash: it is simply picked up on
the next poll, by this or another replica.
"""

from datetime import timedelta
from typing import Any

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_events.http import peer_url
from rapport_partner_share.shared import USER_AGENT
from rapport_partner_share.slices import fills
from rapport_partner_share.unit_of_work import SqlPartnerShareUnitOfWork


class ProfileUnavailable(Exception):
    """Profile did not give a usable answer; the fill is retried later."""


class ProfileClient:
    """Reads the customer record and metrics from profile, with the internal bearer token."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str, timeout: float) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        self._timeout = timeout

    @property
    def timeout(self) -> float:
        """Seconds one call to profile may take."""
        return self._timeout

    async def _get(self, *segments: str) -> httpx.Response:
        try:
            return await self._http.get(
                peer_url(self._base_url, *segments), headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as error:
            raise ProfileUnavailable(f"{type(error).__name__}: {error}") from error

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        """The customer record; None when profile does not know the customer."""
        response = await self._get("customers", customer_id)
        if response.status_code == 404:
            return None
        return self._json(response)

    async def metrics(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's metrics; None when profile has none (or no metrics route yet)."""
        response = await self._get("customers", customer_id, "metrics")
        if response.status_code in (404, 405, 501):
            return None
        return self._json(response)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise ProfileUnavailable(f"profile answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise ProfileUnavailable("profile answered with something other than JSON") from error
        if not isinstance(body, dict):
            raise ProfileUnavailable("profile answered with something other than an object")
        return body


async def fill_due(sessions: SessionFactory, profile: ProfileClient, limit: int = 20) -> int:
    """Fetch and store the profile-backed slices of consents waiting for them."""
    # Two calls to profile per job, one job after another.
    lease = timedelta(seconds=profile.timeout * 2 * limit + 5)
    with suppress_instrumentation():
        async with transaction(sessions) as session:
            jobs = await fills.due_fills(SqlPartnerShareUnitOfWork(session), limit, lease)
    for job in jobs:
        try:
            customer = await profile.customer(job.customer_id) if job.needs_customer else None
            metrics = (
                await profile.metrics(job.customer_id)
                if job.needs_metrics and (customer is not None or not job.needs_customer)
                else None
            )
        except ProfileUnavailable as error:
            async with transaction(sessions) as session:
                await fills.postpone_fill(SqlPartnerShareUnitOfWork(session), job, str(error))
            continue
        async with transaction(sessions) as session:
            await fills.complete_fill(
                SqlPartnerShareUnitOfWork(session),
                job,
                customer=customer,
                metrics=metrics,
                fetched_at=utcnow(),
            )
    return len(jobs)
