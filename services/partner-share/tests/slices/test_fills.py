"""Fills of profile-backed slices when the consent changes while profile is being asked."""

import asyncio
import time

import httpx
from fastapi import FastAPI
from partner_share_testing import (
    ProfileStub,
    apply,
    granted,
    profile_customer,
    register_partner,
    revoked,
    wait_filled,
)

from rapport_events.testing.harness import until

# The lease a fetch holds on its consent (`slices.fills.due_fills`): a fill that waited for
# it would take this long.
FETCH_LEASE_S = 30.0


class TestAChangeDuringAFetch:
    async def test_a_partial_revocation_drops_the_fetch_and_fills_again_at_once(
        self, app: FastAPI, client: httpx.AsyncClient, profile_stub: ProfileStub
    ) -> None:
        partner = await register_partner(client, slices=["demographics", "purchase_summary"])
        profile_stub.customers["c-ada"] = profile_customer("c-ada")
        profile_stub.metrics["c-ada"] = {"orders_count": 2, "revenue": "80.00"}
        profile_stub.hold = asyncio.Event()

        await apply(app, granted("c-ada", partner.id, ["demographics", "purchase_summary"], 1))
        await until(
            lambda: any("c-ada" in path for path, _ in profile_stub.requests),
            timeout=15.0,
            what="the filler asking profile",
        )
        await apply(app, revoked("c-ada", partner.id, ["demographics"], 2))
        started = time.monotonic()
        profile_stub.hold.set()  # the fetch from before the revocation answers now

        consent = await wait_filled(client, "c-ada", partner.id, timeout=FETCH_LEASE_S / 2)

        assert time.monotonic() - started < FETCH_LEASE_S / 2
        assert consent["slices"] == ["purchase_summary"]
        assert consent["version"] == 2
