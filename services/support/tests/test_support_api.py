"""Support over HTTP, with its real lifespan, a real broker and a real database."""

import base64
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rapport_events.codec import Envelope
from rapport_events.settings import KafkaSettings
from rapport_events.testing.pytest_plugin import DatabaseFactory
from rapport_events.types import (
    ConsentGranted,
    CustomerRegistered,
    LineItem,
    OrderCompleted,
    TicketOpened,
    TicketRated,
    TicketResolved,
    TicketSlaBreached,
    TicketUpdated,
)

Poll = Callable[..., Awaitable[httpx.Response]]
Publish = Callable[..., Awaitable[None]]
ReadLog = Callable[..., Awaitable[list[Envelope]]]

# Every route of the contract, with a body where it takes one.
PROTECTED_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/customers/c/support-context", None),
    ("GET", "/customers/c/export", None),
    ("POST", "/tickets", {"customer_id": "c", "subject": "s"}),
    ("GET", "/tickets", None),
    ("GET", "/tickets/t", None),
    ("PATCH", "/tickets/t", {"priority": "high"}),
    ("POST", "/tickets/t/comments", {"body": "b", "author": "a"}),
    ("POST", "/tickets/t/links", {"ticket_id": "u"}),
    ("POST", "/tickets/t/merge", {"into_ticket_id": "u"}),
    ("POST", "/tickets/t/rating", {"rating": 5}),
    ("GET", "/tickets/t/similar", None),
    ("GET", "/agents/grace/queue", None),
    ("GET", "/sla-policies", None),
    ("PUT", "/sla-policies/high", {"first_response_minutes": 1, "resolution_minutes": 2}),
    ("GET", "/products/X2/known-issues", None),
    ("POST", "/social/mentions", {"platform": "twitter", "handle": "a", "text": "t"}),
    ("GET", "/social/mentions", None),
    ("GET", "/social/mentions/m", None),
    ("PATCH", "/social/mentions/m", {"status": "closed"}),
    ("POST", "/social/mentions/m/reply", {"text": "t", "author": "a"}),
]


def ready(response: httpx.Response) -> bool:
    return response.status_code == 200


class TestHealth:
    async def test_healthz_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_turns_ready(self, client: httpx.AsyncClient, poll: Poll) -> None:
        response = await poll(lambda: client.get("/readyz"), ready, timeout=10.0)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "broker": "ok", "tasks": "ok"}


class TestAuth:
    async def test_every_route_refuses_a_missing_or_wrong_token(
        self, client: httpx.AsyncClient
    ) -> None:
        for method, path, body in PROTECTED_ROUTES:
            for headers in ({}, {"Authorization": "Bearer nope"}):
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"] == "unauthorized"

    async def test_the_contract_routes_are_all_documented(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        for method, path, _ in PROTECTED_ROUTES:
            template = (
                path.replace("/c/", "/{customer_id}/")
                .replace("/tickets/t", "/tickets/{ticket_id}")
                .replace("/mentions/m", "/mentions/{mention_id}")
                .replace("/agents/grace", "/agents/{agent}")
                .replace("/high", "/{priority}")
                .replace("/X2/", "/{product_model}/")
            )
            assert method.lower() in paths.get(template, {}), template


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


# Shaped like the service's own cursors, with what a database cannot take or a date
# that overflows when made UTC.
BAD_CURSORS = (
    _cursor("2026-01-01T00:00:00+00:00|id-\x00"),
    _cursor("2026-01-01T00:00:00+00:00|" + "a" * 65),
    _cursor("9999-12-31T23:59:59-10:00|0b1c"),
    _cursor("2026-01-01T00:00:00+00:00"),
    "A" * 5000,
    "%C2%B2",
)


class TestBadInput:
    async def test_is_a_clear_4xx_and_never_a_500(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        cases: list[tuple[str, str, Any, int]] = [
            ("POST", "/tickets", {"customer_id": "c"}, 422),
            ("POST", "/tickets", {"customer_id": "c", "subject": "  "}, 422),
            ("POST", "/tickets", {"customer_id": "c", "subject": "s", "priority": "asap"}, 422),
            ("POST", "/tickets", {"customer_id": "c", "subject": "s", "surprise": 1}, 422),
            ("POST", "/tickets", "not json", 422),
            ("GET", "/tickets?status=lost", None, 422),
            ("GET", "/tickets?limit=0", None, 422),
            ("GET", "/tickets?cursor=bm9wZQ", None, 422),
            *(
                ("GET", f"{listing}?cursor={cursor}", None, 422)
                for listing in ("/tickets", "/social/mentions")
                for cursor in BAD_CURSORS
            ),
            ("GET", "/tickets/nope", None, 404),
            ("PATCH", "/tickets/nope", {"priority": "high"}, 404),
            ("POST", "/tickets/nope/rating", {"rating": 9}, 422),
            (
                "PUT",
                "/sla-policies/asap",
                {"first_response_minutes": 1, "resolution_minutes": 1},
                422,
            ),
            (
                "PUT",
                "/sla-policies/low",
                {"first_response_minutes": 9, "resolution_minutes": 1},
                422,
            ),
            ("POST", "/social/mentions", {"platform": "x", "handle": "a", "text": ""}, 422),
            ("GET", "/social/mentions?sentiment=angry", None, 422),
            ("GET", "/social/mentions/nope", None, 404),
            ("POST", "/social/mentions/nope/reply", {"text": "t", "author": "a"}, 404),
        ]
        for method, path, body, expected in cases:
            if isinstance(body, str):
                response = await client.request(
                    method, path, content=body, headers={**auth, "content-type": "application/json"}
                )
            else:
                response = await client.request(method, path, json=body, headers=auth)
            assert response.status_code == expected, (method, path, response.text)
            assert response.json()["error"] and response.json()["message"], (method, path)

    async def test_a_refused_change_changes_nothing(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        created = await client.post(
            "/tickets", json={"customer_id": "c", "subject": "Leaks"}, headers=auth
        )
        ticket_id = created.json()["id"]

        refused = await client.patch(
            f"/tickets/{ticket_id}", json={"status": "resolved", "priority": "high"}, headers=auth
        )

        assert refused.status_code == 422
        assert "resolution" in refused.json()["message"]
        ticket = (await client.get(f"/tickets/{ticket_id}", headers=auth)).json()
        assert (ticket["status"], ticket["priority"]) == ("new", "normal")

    async def test_a_nul_character_is_never_a_500(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        created = await client.post(
            "/tickets", json={"customer_id": "c-nul", "subject": "\x00"}, headers=auth
        )
        merged = await client.post("/tickets/%00/merge", json={"into_ticket_id": "t"}, headers=auth)

        # SQLite stores the character; PostgreSQL text cannot hold it, which is bad input.
        assert created.status_code in (201, 422), created.text
        assert merged.status_code in (404, 422), merged.text
        if created.status_code == 422:
            assert "NUL" in created.json()["message"]
            listed = await client.get("/tickets?customer_id=c-nul", headers=auth)
            assert listed.json()["items"] == []


class TestTicketLifecycle:
    async def test_open_answer_resolve_rate_reaches_the_log(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        kafka_settings: KafkaSettings,
        read_log: ReadLog,
    ) -> None:
        created = await client.post(
            "/tickets",
            json={
                "customer_id": "cust-9",
                "subject": "Laptop will not charge",
                "channel": "phone",
                "priority": "high",
                "product_model": "ZenBook 14",
                "assignee": "grace",
            },
            headers=auth,
        )
        assert created.status_code == 201, created.text
        ticket_id = created.json()["id"]

        answered = await client.post(
            f"/tickets/{ticket_id}/comments",
            json={"body": "Please try another charger", "author": "grace"},
            headers=auth,
        )
        internal = await client.post(
            f"/tickets/{ticket_id}/comments",
            json={"body": "Known batch issue", "author": "grace", "public": False},
            headers=auth,
        )
        resolved = await client.patch(
            f"/tickets/{ticket_id}",
            json={"status": "resolved", "resolution": "Replaced the charger", "category": "power"},
            headers=auth,
        )
        rated = await client.post(f"/tickets/{ticket_id}/rating", json={"rating": 4}, headers=auth)

        assert [r.status_code for r in (answered, internal, resolved, rated)] == [
            201,
            201,
            200,
            200,
        ]
        ticket = (await client.get(f"/tickets/{ticket_id}", headers=auth)).json()
        assert (ticket["status"], ticket["rating"], ticket["category"]) == ("resolved", 4, "power")
        assert ticket["first_responded_at"] is not None
        assert [c["public"] for c in ticket["comments"]] == [True, False]
        listed = (
            await client.get("/tickets?product_model=zenbook%2014&status=resolved", headers=auth)
        ).json()
        assert [t["id"] for t in listed["items"]] == [ticket_id]

        def complete(envelopes: list[Envelope]) -> bool:
            return any(isinstance(e.data, TicketRated) for e in envelopes)

        envelopes = await read_log(kafka_settings, complete)
        kinds = [type(e.data) for e in envelopes if getattr(e.data, "ticket_id", None) == ticket_id]
        assert kinds == [TicketOpened, TicketUpdated, TicketUpdated, TicketResolved, TicketRated]
        assert {e.subject for e in envelopes} == {"cust-9"}
        assert {e.source for e in envelopes} == {"/services/support"}


class TestSlaOverHttp:
    async def test_a_breach_shows_on_the_ticket_and_queue_and_reaches_the_log(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        poll: Poll,
        kafka_settings: KafkaSettings,
        read_log: ReadLog,
    ) -> None:
        policy = await client.put(
            "/sla-policies/urgent",
            json={"first_response_minutes": 0, "resolution_minutes": 60},
            headers=auth,
        )
        assert policy.status_code == 200 and policy.json()["configured"] is True
        created = await client.post(
            "/tickets",
            json={
                "customer_id": "c-1",
                "subject": "Down",
                "priority": "urgent",
                "assignee": "linus",
            },
            headers=auth,
        )
        ticket_id = created.json()["id"]

        ticket = await poll(
            lambda: client.get(f"/tickets/{ticket_id}", headers=auth),
            lambda r: bool(r.json()["breaches"]),
        )

        assert [b["target"] for b in ticket.json()["breaches"]] == ["first_response"]
        queue = (await client.get("/agents/linus/queue", headers=auth)).json()
        assert (queue["breached"], queue["tickets"][0]["id"]) == (1, ticket_id)
        breached = (await client.get("/tickets?breached=true", headers=auth)).json()["items"]
        assert [t["id"] for t in breached] == [ticket_id]
        envelopes = await read_log(
            kafka_settings, lambda es: any(isinstance(e.data, TicketSlaBreached) for e in es)
        )
        [event] = [e.data for e in envelopes if isinstance(e.data, TicketSlaBreached)]
        assert (event.ticket_id, event.target, event.priority) == (
            ticket_id,
            "first_response",
            "urgent",
        )

    async def test_the_policies_list_every_priority(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        policies = (await client.get("/sla-policies", headers=auth)).json()
        assert [p["priority"] for p in policies] == ["urgent", "high", "normal", "low"]
        assert all(p["configured"] is False for p in policies)


class TestSupportContext:
    async def test_an_unknown_customer_is_404_json(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        response = await client.get("/customers/nobody/support-context", headers=auth)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_profile_and_order_events_on_the_log_make_the_context(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        kafka_settings: KafkaSettings,
        publish: Publish,
        poll: Poll,
    ) -> None:
        customer_id = str(uuid.uuid4())
        await publish(
            kafka_settings,
            CustomerRegistered(
                customer_id=customer_id,
                email="grace@example.com",
                phone="+12025550143",
                first_name="Grace",
                last_name="Hopper",
            ),
            ConsentGranted(
                customer_id=customer_id, purpose="marketing", channel="sms", source="api", version=1
            ),
            OrderCompleted(
                customer_id=customer_id,
                order_id="o-1",
                revenue=Decimal(999),
                items=(
                    LineItem(
                        product_id="p-1",
                        product_model="Pixel 9",
                        category="phones",
                        price=Decimal(999),
                        serial_number="PX9-1",
                    ),
                ),
            ),
        )

        response = await poll(
            lambda: client.get(f"/customers/{customer_id}/support-context", headers=auth),
            lambda r: r.status_code == 200 and bool(r.json()["products"]),
        )

        assert response.status_code == 200, response.text
        body = response.json()
        customer = body["customer"]
        assert (customer["first_name"], customer["email"]) == ("Grace", "grace@example.com")
        assert [(c["purpose"], c["channel"], c["granted"]) for c in customer["consents"]] == [
            ("marketing", "sms", True)
        ]
        [product] = body["products"]
        assert (product["product_model"], product["serial_number"]) == ("Pixel 9", "PX9-1")
        assert product["under_warranty"] is True

    async def test_a_customer_registered_in_profile_shows_up(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        database_factory: DatabaseFactory,
        kafka_settings: KafkaSettings,
        poll: Poll,
        drain: Callable[[FastAPI], Awaitable[None]],
    ) -> None:
        profile_main = pytest.importorskip("rapport_profile.main")
        profile_settings = pytest.importorskip("rapport_profile.settings")
        profile = profile_main.create_app(
            profile_settings.Settings(
                database_url=await database_factory("profile"),
                api_token=auth["Authorization"].removeprefix("Bearer "),
                kafka=kafka_settings,
            )
        )
        async with (
            profile.router.lifespan_context(profile),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=profile), base_url="http://profile"
            ) as profile_client,
        ):
            created = await profile_client.post(
                "/customers",
                headers=auth,
                json={
                    "email": "Alan@Example.com",
                    "phone": "+441632960961",
                    "first_name": "Alan",
                    "last_name": "Turing",
                },
            )
            assert created.status_code == 201, created.text
            customer_id = created.json()["id"]
            await drain(profile)

        # Profile is stopped now; support answers from its own projection.
        response = await poll(
            lambda: client.get(f"/customers/{customer_id}/support-context", headers=auth), ready
        )
        assert response.status_code == 200, response.text
        customer = response.json()["customer"]
        assert customer["email"] == "alan@example.com"
        assert customer["phone"] == "+441632960961"


class TestExport:
    async def test_is_never_404_and_lists_every_table(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        empty = await client.get("/customers/nobody/export", headers=auth)
        await client.post("/tickets", json={"customer_id": "c-7", "subject": "Hi"}, headers=auth)
        held = await client.get("/customers/c-7/export", headers=auth)

        assert empty.status_code == held.status_code == 200
        assert (empty.json()["service"], empty.json()["customer_id"]) == ("support", "nobody")
        assert set(empty.json()["records"]) == set(held.json()["records"])
        assert all(rows == [] for rows in empty.json()["records"].values())
        assert [t["subject"] for t in held.json()["records"]["support_tickets"]] == ["Hi"]


class TestKnownIssuesRoute:
    async def test_a_model_name_with_spaces_and_slashes_is_one_model(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        for subject in ("Fan noisy", "Fan very noisy"):
            await client.post(
                "/tickets",
                json={
                    "customer_id": "c",
                    "subject": subject,
                    "category": "cooling",
                    "product_model": "ThinkPad T14 Gen 5/AMD",
                },
                headers=auth,
            )

        response = await client.get(
            "/products/ThinkPad T14 Gen 5/AMD/known-issues",
            params={"text": "the fan is noisy"},
            headers=auth,
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["tickets"], body["categories"][0]["category"]) == (2, "cooling")
        assert len(body["similar"]) == 2
