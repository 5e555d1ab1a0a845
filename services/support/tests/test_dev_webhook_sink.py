"""The webhook sink of `make run`: a social reply works out of the box, lands in var/, and
goes on the customer's timeline."""

import json
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from rapport_events.codec import Envelope
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.procfile import option, procfile_command, start_process
from rapport_events.types import CustomerRegistered
from rapport_support.mentions import webhooks

REPO = Path(__file__).resolve().parents[3]
PROCFILE = REPO / "Procfile"
SECRET = "rapport-dev-webhook-secret"
Poll = Callable[..., Awaitable[httpx.Response]]
ReadLog = Callable[..., Awaitable[list[Envelope]]]


def start_sink(port: int, directory: Path) -> subprocess.Popen[bytes]:
    process = start_process(PROCFILE, "webhooks", {"--port": str(port), "--dir": str(directory)})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the webhook sink exited"
        try:
            httpx.post(f"http://127.0.0.1:{port}/ping", json={}, timeout=2)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the webhook sink did not listen")


class TestDevelopmentWebhookSink:
    def test_make_run_points_every_outgoing_webhook_at_the_sink(self) -> None:
        command = procfile_command(PROCFILE, "webhooks")
        makefile = (REPO / "Makefile").read_text()
        [base] = re.findall(r"^DEV_WEBHOOKS := (\S+)$", makefile, re.M)
        assert base == f"http://{option(command, '--host')}:{option(command, '--port')}"
        assert option(command, "--dir") == "var/webhooks"
        for variable in (
            "SUPPORT_SOCIAL_WEBHOOK_DEFAULT",
            "CAMPAIGN_SMS_WEBHOOK_URL",
            "CAMPAIGN_PUSH_WEBHOOK_URL",
            "CAMPAIGN_SOCIAL_WEBHOOK_URL",
        ):
            assert re.search(rf"{variable}=[^\n]*?\$\(DEV_WEBHOOKS\)", makefile), variable

    async def test_a_reply_reaches_the_sink_and_the_customers_timeline(
        self,
        make_app: Callable[..., Any],
        auth: dict[str, str],
        poll: Poll,
        read_log: ReadLog,
        publish: Callable[..., Awaitable[None]],
        kafka_settings: KafkaSettings,
        tmp_path: Path,
    ) -> None:
        customer_id = str(uuid.uuid4())
        port = free_port()
        sink = start_sink(port, tmp_path / "webhooks")
        default = {"url": f"http://127.0.0.1:{port}/social-replies", "secret": SECRET}
        try:
            async with make_app(social_webhook_default=default) as (_app, client):
                await publish(
                    kafka_settings,
                    CustomerRegistered(
                        customer_id=customer_id,
                        email="ada@example.com",
                        first_name="Ada",
                        last_name="Lovelace",
                        social_handles={"mastodon": "@ada"},
                    ),
                )
                known = await poll(
                    lambda: client.get(f"/customers/{customer_id}/support-context", headers=auth),
                    lambda r: r.status_code == 200,
                )
                assert known.status_code == 200, known.text
                mention = (
                    await client.post(
                        "/social/mentions",
                        json={"platform": "mastodon", "handle": "@ada", "text": "Open today?"},
                        headers=auth,
                    )
                ).json()
                queued = await client.post(
                    f"/social/mentions/{mention['id']}/reply",
                    json={"text": "Yes, until 6pm!", "author": "pr:linus"},
                    headers=auth,
                )
                assert queued.status_code == 202, queued.text
                detail = await poll(
                    lambda: client.get(f"/social/mentions/{mention['id']}", headers=auth),
                    lambda r: r.json()["replies"][0]["status"] != "pending",
                )
                log = await read_log(
                    kafka_settings,
                    lambda es: any(e.type == "rapport.social.reply.sent.v2" for e in es),
                )
        finally:
            sink.terminate()
            assert sink.wait(timeout=10) == 0

        [reply] = detail.json()["replies"]
        assert reply["status"] == "sent"
        [stored] = sorted((tmp_path / "webhooks" / "social-replies").glob("*.json"))
        received = json.loads(stored.read_text())
        assert (received["body"]["text"], received["body"]["platform"]) == (
            "Yes, until 6pm!",
            "mastodon",
        )
        body = json.dumps(received["body"], separators=(",", ":"), ensure_ascii=False).encode()
        assert webhooks.verify(SECRET, body, received["headers"]["X-Rapport-Signature"])
        [sent] = [e for e in log if e.type == "rapport.social.reply.sent.v2"]
        assert sent.data.customer_id == customer_id  # type: ignore[attr-defined]
        assert (sent.data.reply_id, sent.data.text) == (reply["id"], "Yes, until 6pm!")  # type: ignore[attr-defined]
