"""GDPR export and erasure across the real services of the repo, on the real broker."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect, text

from rapport_campaign.main import create_app as create_campaign
from rapport_campaign.settings import Settings as CampaignSettings
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_partner_share.main import create_app as create_partner_share
from rapport_partner_share.settings import Settings as PartnerShareSettings
from rapport_profile.main import create_app
from rapport_profile.settings import Settings
from rapport_support.main import create_app as create_support
from rapport_support.settings import Settings as SupportSettings

TOKEN = "gdpr-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PEERS = {
    "campaign": "http://campaign",
    "support": "http://support",
    "partner-share": "http://partner-share",
}


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def drain_outbox(app: FastAPI, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay = app.state.runtime.relay
        if relay is not None and (await relay.backlog())[0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the outbox was not drained within {timeout}s")


@pytest.fixture
async def stack(
    database_factory: Callable[[str], Awaitable[str]], kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Profile and the three other services, each with its own database, on one topic.

    Profile reaches the others through httpx transports mounted on their URLs.
    """
    peers = {
        "campaign": create_campaign(
            CampaignSettings(
                database_url=await database_factory("campaign"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        ),
        "support": create_support(
            SupportSettings(
                database_url=await database_factory("support"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        ),
        "partner-share": create_partner_share(
            PartnerShareSettings(
                database_url=await database_factory("partner"),
                api_token=TOKEN,
                kafka=kafka_settings,
            )
        ),
    }
    profile = create_app(
        Settings(
            database_url=await database_factory("profile"),
            api_token=TOKEN,
            kafka=kafka_settings,
            campaign_url=PEERS["campaign"],
            support_url=PEERS["support"],
            partner_share_url=PEERS["partner-share"],
            erasure_wait_s=5.0,
        )
    )
    async with AsyncExitStack() as stack:
        for app in (*peers.values(), profile):
            await stack.enter_async_context(app.router.lifespan_context(app))
        mounts = {PEERS[name] + "/": httpx.ASGITransport(app=app) for name, app in peers.items()}
        await profile.state.http.aclose()
        profile.state.http = httpx.AsyncClient(mounts=mounts)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=profile), base_url="http://profile")
        )
        yield profile, client
        for app in (profile, *peers.values()):
            await drain_outbox(app)


async def registered_everywhere(client: httpx.AsyncClient, customer_id: str) -> bool:
    reply = (await client.get(f"/customers/{customer_id}/export", headers=AUTH)).json()
    parts = reply["services"].values()
    return reply["complete"] and all(
        any(rows for rows in part["records"].values()) for part in parts
    )


async def raw_rows_mentioning(app: FastAPI, needles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, row) of every row in any of the service's tables that holds one of `needles`."""
    engine = app.state.runtime.engine
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        found = []
        for table in tables:
            for row in (await connection.execute(text(f'SELECT * FROM "{table}"'))).all():
                flat = " ".join(
                    value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    for value in row
                )
                if any(needle in flat for needle in needles):
                    found.append((table, flat))
    return found


class TestExportAndErasure:
    async def test_export_gathers_every_service_and_erasure_empties_them_within_5_s(
        self, stack: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        profile, client = stack
        created = await client.post(
            "/customers",
            json={"email": "ada@example.com", "first_name": "Augusta", "last_name": "Lovelace"},
            headers=AUTH,
        )
        ada = created.json()["id"]
        dupe = await client.post(
            "/customers",
            json={"email": "ada.king@example.com", "first_name": "Augusta", "last_name": "King"},
            headers=AUTH,
        )
        merged = await client.post(
            f"/customers/{ada}/merge", json={"merged_customer_id": dupe.json()["id"]}, headers=AUTH
        )
        assert merged.status_code == 200, merged.text
        await client.put(
            f"/customers/{ada}/consents",
            json={"purpose": "analytics", "granted": True},
            headers=AUTH,
        )
        assert await until(lambda: registered_everywhere(client, ada)), "peers never saw ada"
        export = (await client.get(f"/customers/{ada}/export", headers=AUTH)).json()

        started = time.monotonic()
        erased = await client.delete(f"/customers/{ada}", headers=AUTH)
        took = time.monotonic() - started

        assert export["service"] == "profile" and export["customer_id"] == ada
        assert export["records"]["customers"][0]["email"] == "ada@example.com"
        assert export["records"]["consents"][0]["purpose"] == "analytics"
        assert set(export["services"]) == set(PEERS)
        assert erased.status_code == 200, erased.text
        body = erased.json()
        assert body["status"] == "completed" and body["completed_at"]
        assert set(body["services"]) == {"profile", *PEERS}
        assert all(body["services"].values())
        assert took < 5.0 + 1.0
        after = (await client.get(f"/customers/{ada}/export", headers=AUTH)).json()
        assert all(not rows for rows in after["records"].values())
        for name, part in after["services"].items():
            left = {table: rows for table, rows in part["records"].items() if rows}
            assert all("tombstone" in table for table in left), (name, left)
        assert (await client.get(f"/customers/{ada}", headers=AUTH)).status_code == 404
        personal = ("ada@example.com", "ada.king@example.com", "Augusta", "Lovelace", "King")
        assert await raw_rows_mentioning(profile, personal) == []
        again = await client.post(
            "/v1/track",
            json={"userId": ada, "event": "Late"},
            headers={"Authorization": "Basic cmFwcG9ydC1kZXYtd3JpdGUta2V5Og=="},
        )
        assert again.status_code == 200
        assert (await client.get(f"/customers/{ada}/timeline", headers=AUTH)).status_code == 404


class TestErasureStillRunning:
    async def test_an_unreachable_service_gives_202_with_a_status_url(
        self, database_url: str, kafka_settings: KafkaSettings
    ) -> None:
        closed = f"http://127.0.0.1:{free_port()}"
        app = create_app(
            Settings(
                database_url=database_url,
                api_token=TOKEN,
                kafka=kafka_settings,
                campaign_url=closed,
                support_url="",
                partner_share_url="",
                erasure_wait_s=0.3,
            )
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
                ada = (
                    await client.post(
                        "/customers",
                        json={"email": "ada@example.com", "first_name": "A", "last_name": "L"},
                        headers=AUTH,
                    )
                ).json()["id"]
                erased = await client.delete(f"/customers/{ada}", headers=AUTH)
                status = await client.get(erased.headers["location"], headers=AUTH)
                unknown = await client.delete("/customers/nobody", headers=AUTH)
            await drain_outbox(app)

        assert erased.status_code == 202
        body = erased.json()
        assert body["status"] == "pending" and body["completed_at"] is None
        assert body["services"]["profile"] is not None and body["services"]["campaign"] is None
        assert body["status_url"] == f"/customers/{ada}/erasure"
        assert status.status_code == 202
        assert unknown.status_code == 404


class BlockingPeer:
    """A peer whose export answers only when released, like a service under load."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.app = FastAPI()

        @self.app.get("/customers/{customer_id}/export")
        async def export(customer_id: str) -> dict[str, Any]:
            self.called.set()
            await self.release.wait()
            return {"service": "campaign", "customer_id": customer_id, "records": {"rows": []}}


class TestExportWhileAPeerIsSlow:
    async def test_a_write_on_sqlite_goes_through_while_export_waits_for_the_peer(
        self, tmp_path: Path, kafka_settings: KafkaSettings
    ) -> None:
        peer = BlockingPeer()
        app = create_app(
            Settings(
                database_url=f"sqlite:///{tmp_path / 'profile.db'}",
                api_token=TOKEN,
                kafka=kafka_settings,
                campaign_url=PEERS["campaign"],
                support_url="",
                partner_share_url="",
            )
        )
        async with app.router.lifespan_context(app):
            await app.state.http.aclose()
            app.state.http = httpx.AsyncClient(
                mounts={PEERS["campaign"] + "/": httpx.ASGITransport(app=peer.app)}
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
                ada = await client.post("/customers", json=customer("ada"), headers=AUTH)
                export = asyncio.create_task(
                    client.get(f"/customers/{ada.json()['id']}/export", headers=AUTH)
                )
                try:
                    async with asyncio.timeout(10):
                        await peer.called.wait()
                    # Without a write transaction held by the export, this takes milliseconds.
                    async with asyncio.timeout(2):
                        grace = await client.post(
                            "/customers", json=customer("grace"), headers=AUTH
                        )
                finally:
                    peer.release.set()
                reply = await export
            await drain_outbox(app)

        assert grace.status_code == 201
        assert reply.status_code == 200 and reply.json()["complete"] is True
        assert reply.json()["records"]["customers"][0]["email"] == "ada@example.com"


def customer(name: str) -> dict[str, str]:
    return {"email": f"{name}@example.com", "first_name": name.title(), "last_name": "L"}
