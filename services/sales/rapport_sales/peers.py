"""What sales asks profile over HTTP: contacts' timelines and the revenue forecast.

Both are read-only and optional: when profile does not answer, sales replies with its
own data and says what is missing.
"""

import asyncio
import logging
from typing import Any

import httpx

from rapport_events.http import peer_url
from rapport_sales.settings import Settings

log = logging.getLogger(__name__)
MAX_CONTACT_TIMELINES = 20


class ProfileClient:
    """Profile's API, with sales' token and a short timeout."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._base = settings.profile_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {settings.profile_token}"}
        self._timeout = settings.profile_timeout_s

    async def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.get(
            url, params=params, headers=self._headers, timeout=self._timeout
        )
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("profile answered with something other than an object")
        return body

    async def timelines(
        self, customer_ids: list[str], limit: int
    ) -> tuple[dict[str, list[dict[str, Any]]], bool]:
        """The newest `limit` timeline entries of each contact; False if one was missing."""

        async def one(customer_id: str) -> list[dict[str, Any]] | None:
            url = peer_url(self._base, "customers", customer_id, "timeline")
            try:
                body = await self._get(url, {"limit": limit})
            except (httpx.HTTPError, ValueError) as error:
                log.info("timeline of %s from profile failed: %s", customer_id, error)
                return None
            items = body.get("items")
            return items if isinstance(items, list) else None

        chosen = customer_ids[:MAX_CONTACT_TIMELINES]
        found = await asyncio.gather(*(one(customer_id) for customer_id in chosen))
        complete = len(chosen) == len(customer_ids) and all(items is not None for items in found)
        return (
            {cid: items for cid, items in zip(chosen, found, strict=True) if items is not None},
            complete,
        )

    async def revenue_forecast(self, months: int) -> dict[str, Any]:
        """profile's monthly revenue forecast from the order history (Holt-Winters)."""
        return await self._get(
            f"{self._base}/analytics/forecast",
            {"metric": "revenue", "interval": "month", "periods": months},
        )
