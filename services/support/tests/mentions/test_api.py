"""Social mentions over HTTP: a known handle's complaint lands on the customer's timeline, and
replies reach a real HTTP receiver, signed, with retries."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks import Webhook

from rapport_events.codec import Envelope
from rapport_events.settings import KafkaSettings
from rapport_events.testing.broker import free_port
from rapport_events.testing.replicas import serving
from rapport_events.types import CustomerRegistered, SocialMentionReceived, TicketOpened
from rapport_events.webhooks import standard_secret
from rapport_support.mentions import webhooks

Poll = Callable[..., Awaitable[httpx.Response]]
Publish = Callable[..., Awaitable[None]]
ReadLog = Callable[..., Awaitable[list[Envelope]]]
SECRET = "twitter-webhook-secret-0123456789"


@dataclass
class Receiver:
    """A platform connector: records each request and answers with the next scripted status."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        self.requests.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """Serve `receiver` on a free loopback port; yields its URL."""
    async with serving(receiver, free_port()) as url:
        yield f"{url}/replies"


class TestAComplaintFromAKnownHandle:
    async def test_becomes_a_ticket_on_the_customers_timeline(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        kafka_settings: KafkaSettings,
        publish: Publish,
        poll: Poll,
        read_log: ReadLog,
    ) -> None:
        customer_id = str(uuid.uuid4())
        await publish(
            kafka_settings,
            CustomerRegistered(
                customer_id=customer_id,
                email="ada@example.com",
                first_name="Ada",
                last_name="Lovelace",
                social_handles={"twitter": "@Ada_L"},
            ),
        )
        known = await poll(
            lambda: client.get(f"/customers/{customer_id}/support-context", headers=auth),
            lambda r: r.status_code == 200,
        )
        assert known.status_code == 200, known.text

        mention = await client.post(
            "/social/mentions",
            json={
                "platform": "Twitter",
                "handle": "ada_l",
                "text": "Third time my order arrived broken. Really disappointed!",
                "url": "https://twitter.com/ada_l/status/42",
                "time": "2026-05-04T12:00:00Z",
                "external_id": "42",
            },
            headers=auth,
        )

        assert mention.status_code == 201, mention.text
        body = mention.json()
        assert (body["customer_id"], body["linked"], body["sentiment"], body["kind"]) == (
            customer_id,
            True,
            "negative",
            "complaint",
        )
        context = (
            await client.get(f"/customers/{customer_id}/support-context", headers=auth)
        ).json()
        assert [t["id"] for t in context["tickets"]] == [body["ticket_id"]]
        assert context["tickets"][0]["channel"] == "social"
        assert [m["id"] for m in context["mentions"]] == [body["id"]]
        envelopes = await read_log(
            kafka_settings, lambda es: any(isinstance(e.data, TicketOpened) for e in es)
        )
        mine = [
            e for e in envelopes if e.subject == customer_id and e.source == "/services/support"
        ]
        assert [type(e.data) for e in mine] == [SocialMentionReceived, TicketOpened]

    async def test_pr_staff_filter_by_platform_sentiment_and_status(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        posts = [
            ("twitter", "Worst support ever, still broken"),
            ("twitter", "Loving the new headphones!"),
            ("instagram", "This blender is terrible"),
        ]
        for platform, said in posts:
            created = await client.post(
                "/social/mentions",
                json={"platform": platform, "handle": "@someone", "text": said},
                headers=auth,
            )
            assert created.status_code == 201, created.text

        async def listed(query: str) -> list[str]:
            reply = await client.get(f"/social/mentions?{query}", headers=auth)
            assert reply.status_code == 200, reply.text
            return [m["text"] for m in reply.json()["items"]]

        assert await listed("platform=twitter&sentiment=negative") == [posts[0][1]]
        assert await listed("status=ticketed") == [posts[2][1], posts[0][1]]
        assert await listed("sentiment=positive&linked=false") == [posts[1][1]]


class TestReplyingThroughTheWebhook:
    async def test_a_reply_is_signed_retried_and_recorded(
        self, make_app: Callable[..., Any], auth: dict[str, str], poll: Poll
    ) -> None:
        receiver = Receiver(statuses=[503, 200])
        async with receiving(receiver) as url:
            hooks = {"twitter": {"url": url, "secret": SECRET}}
            async with make_app(social_webhooks=hooks) as (_app, client):
                mention = (
                    await client.post(
                        "/social/mentions",
                        json={
                            "platform": "twitter",
                            "handle": "@grace",
                            "text": "My kettle stopped working, any help?",
                            "external_id": "7",
                        },
                        headers=auth,
                    )
                ).json()

                queued = await client.post(
                    f"/social/mentions/{mention['id']}/reply",
                    json={"text": "Sorry to hear that, we sent you a DM", "author": "pr:linus"},
                    headers=auth,
                )
                assert queued.status_code == 202, queued.text
                detail = await poll(
                    lambda: client.get(f"/social/mentions/{mention['id']}", headers=auth),
                    lambda r: r.json()["replies"][0]["status"] != "pending",
                )
                ticket = (await client.get(f"/tickets/{mention['ticket_id']}", headers=auth)).json()

        [reply] = detail.json()["replies"]
        assert (reply["status"], reply["attempts"]) == ("sent", 2)
        assert [a["status_code"] for a in reply["delivery"]] == [503, 200]
        assert detail.json()["status"] == "replied"
        assert ticket["first_responded_at"] is not None
        assert len(receiver.requests) == 2
        for headers, body in receiver.requests:
            assert webhooks.verify(SECRET, body, headers["x-rapport-signature"])
            assert Webhook(standard_secret(SECRET)).verify(body, dict(headers))
            assert headers["x-rapport-delivery"] == headers["webhook-id"] == reply["id"]
        assert receiver.requests[0][1] == receiver.requests[1][1]

    async def test_a_platform_without_a_webhook_is_a_422(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        mention = (
            await client.post(
                "/social/mentions",
                json={"platform": "mastodon", "handle": "@x", "text": "Is the shop open?"},
                headers=auth,
            )
        ).json()

        refused = await client.post(
            f"/social/mentions/{mention['id']}/reply",
            json={"text": "Yes!", "author": "pr"},
            headers=auth,
        )

        assert refused.status_code == 422
        assert "webhook" in refused.json()["message"]
        detail = (await client.get(f"/social/mentions/{mention['id']}", headers=auth)).json()
        assert detail["replies"] == []
