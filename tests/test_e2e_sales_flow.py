"""End to end over HTTP, services as processes on one broker: a campaign click leads to an
opportunity in sales, which is won; its order shows in profile's metrics and in campaign's
attribution."""

import email
import email.policy
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rapport_events.testing.broker import TansuBroker, free_port
from rapport_events.testing.harness import until_value
from rapport_events.testing.procfile import start_process
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.testing.stack import DEV_TOKEN, Stack, kafka_env

pytestmark = [pytest.mark.processes, pytest.mark.e2e]

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"
SERVICES = ["profile", "campaign", "sales"]


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The SMTP sink of `make run`, storing what campaign sends as .eml files."""
    port, folder = free_port(), tmp_path / "mail"
    process = start_process(PROCFILE, "mail", {"--port": str(port), "--dir": str(folder)})
    try:
        yield port, folder
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def stack(
    kafka_broker: TansuBroker,
    database_factory: DatabaseFactory,
    mail_sink: tuple[int, Path],
    tmp_path: Path,
) -> Any:
    databases = {name: await database_factory(name) for name in SERVICES}
    env = {
        **kafka_env(kafka_broker.bootstrap_servers, "e2e-sales"),
        "CAMPAIGN_SMTP_PORT": str(mail_sink[0]),
        "CAMPAIGN_WORKER_INTERVAL_S": "0.2",
        "PROFILE_CAMPAIGN_URL": "",
        "PROFILE_SUPPORT_URL": "",
        "PROFILE_PARTNER_SHARE_URL": "",
        "PROFILE_SALES_URL": "",
    }
    running = Stack(workdir=tmp_path, env=env, databases=databases).start(SERVICES)
    try:
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


def tracking_token(folder: Path) -> str | None:
    """The click token of the first link in the first mail the sink stored."""
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
        found = re.search(r"/t/([A-Za-z0-9._~-]+)", body.get_content() if body else "")
        if found:
            return found.group(1)
    return None


class TestCampaignClickToWonOpportunity:
    async def test_the_won_deal_s_order_reaches_profile_metrics_and_campaign_attribution(
        self, stack: Stack, mail_sink: tuple[int, Path]
    ) -> None:
        profile, campaign, sales = (stack.url(name) for name in SERVICES)
        async with httpx.AsyncClient(timeout=10.0, headers=AUTH) as client:
            created = await client.post(
                f"{profile}/customers",
                json={
                    "email": f"buyer-{uuid.uuid4().hex[:6]}@acme.example",
                    "first_name": "Bea",
                    "last_name": "Buyer",
                },
            )
            customer = created.json()["id"]
            consent = await client.put(
                f"{profile}/customers/{customer}/consents",
                json={"purpose": "marketing", "channel": "email", "granted": True},
            )
            assert (created.status_code, consent.status_code) == (201, 200), consent.text

            async def reachable() -> bool:
                reply = await client.get(f"{campaign}/customers/{customer}/export")
                return reply.status_code == 200 and bool(
                    reply.json()["records"]["campaign_consents"]
                )

            await until_value(reachable, 30, "campaign knowing the consenting customer")
            launched = await client.post(
                f"{campaign}/campaigns",
                json={
                    "name": "Fleet offer",
                    "channel": "email",
                    "variants": [
                        {
                            "name": "A",
                            "subject": "Machines",
                            "body": "See {{ track('https://shop.example/x') }}",
                        }
                    ],
                    "audience": {"customer_ids": [customer]},
                },
            )
            campaign_id = launched.json()["id"]
            assert launched.status_code == 201, launched.text
            go = await client.post(f"{campaign}/campaigns/{campaign_id}/launch")
            assert go.status_code in (200, 202), go.text

            async def mailed() -> str | None:
                return tracking_token(mail_sink[1])

            token = await until_value(mailed, 30, "the campaign's mail in the sink")
            clicked = await client.get(f"{campaign}/t/{token}", follow_redirects=False)
            assert clicked.status_code in (302, 303, 307), clicked.text

            async def click_known_to_sales() -> Any:
                body = (await client.get(f"{sales}/customers/{customer}/export")).json()
                rows = body["records"]["customers"]
                return rows if rows and rows[0]["last_campaign_id"] == campaign_id else None

            await until_value(click_known_to_sales, 30, "the click in sales")
            account = (
                await client.post(f"{sales}/accounts", json={"name": "Acme", "owner": "rep:ann"})
            ).json()["id"]
            deal = await client.post(
                f"{sales}/opportunities",
                json={
                    "account_id": account,
                    "name": "10 machines",
                    "amount": "4200.00",
                    "customer_id": customer,
                },
            )
            assert deal.status_code == 201, deal.text
            won = await client.post(f"{sales}/opportunities/{deal.json()['id']}/win")
            assert won.status_code == 200, won.text

            async def in_profile_metrics() -> Any:
                metrics = (await client.get(f"{profile}/customers/{customer}/metrics")).json()
                return metrics if metrics.get("orders") == 1 else None

            async def attributed() -> Any:
                report = (await client.get(f"{campaign}/campaigns/{campaign_id}/report")).json()
                return report if report.get("converted") == 1 else None

            call = await client.post(
                f"{sales}/activities",
                json={"kind": "call", "subject": "Thanks", "customer_ids": [customer]},
            )
            assert call.status_code == 201, call.text

            async def on_profile_timeline() -> Any:
                url = f"{profile}/customers/{customer}/timeline"
                types = {item["type"] for item in (await client.get(url)).json()["items"]}
                wanted = {"rapport.opportunity.won.v1", "rapport.activity.logged.v1"}
                return types if wanted <= types else None

            metrics = await until_value(in_profile_metrics, 30, "the order in profile's metrics")
            report = await until_value(attributed, 30, "the conversion in campaign's report")
            timeline = await until_value(on_profile_timeline, 30, "sales' events on the timeline")

        assert deal.json()["source"] == f"campaign:{campaign_id}"
        assert float(metrics["revenue"]) == 4200.0
        assert float(report["revenue"]) == 4200.0
        assert {"rapport.opportunity.created.v1", "rapport.order.completed.v1"} <= timeline
