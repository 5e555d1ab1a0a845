"""The four services faked at the HTTP level, for the console's tests and its bench.

`FakeServices` answers what the console asks with payloads shaped like the services'
own response models (the tests validate them against those models, so the fakes cannot
drift), and can take a service down or make it slow.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from rapport_console.settings import Settings

CUSTOMER_ID = "3f0c6f0e-5a8e-4c57-9c3e-2b1f0f7d9a11"
SEGMENT_ID = "seg-vip"
PORTS = {"profile": 18001, "campaign": 18002, "support": 18003, "partner-share": 18004}
TOKEN = "console-test-token-0123456789abcdefghij"


def fake_settings(**overrides: Any) -> Settings:
    """Settings whose service URLs point at the fakes."""
    urls = {
        f"{name.replace('-', '_')}_url": f"http://{name}.test:{port}"
        for name, port in PORTS.items()
    }
    defaults: dict[str, Any] = {
        "environment": "development",
        "api_token": TOKEN,
        "service_timeout_s": 0.5,
    }
    return Settings(**{**defaults, **urls, **overrides})


def _at(days_ago: int) -> str:
    return (datetime(2026, 11, 30, 12, tzinfo=UTC) - timedelta(days=days_ago)).isoformat()


def customer() -> dict[str, Any]:
    return {
        "id": CUSTOMER_ID,
        "email": "ada@example.com",
        "phone": "+442079460000",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "birth_date": "1990-12-10",
        "gender": "female",
        "income_band": "high",
        "education": "university",
        "country": "GB",
        "city": "London",
        "acquisition_channel": "newsletter",
        "social_handles": {"mastodon": "@ada@example.social"},
        "external_ids": {"shop": "c-1815"},
        "status": "active",
        "merged_into": None,
        "created_at": _at(400),
        "updated_at": _at(10),
        "traits": {"favourite_colour": "teal"},
        "accounts": [],
    }


def consents() -> dict[str, Any]:
    history = [
        {
            "version": 1,
            "purpose": "marketing",
            "channel": "email",
            "partner_id": None,
            "slices": [],
            "granted": True,
            "source": "signup-form",
            "text_version": "2026-01",
            "actor": None,
            "changed_at": _at(400),
        },
        {
            "version": 2,
            "purpose": "marketing",
            "channel": "email",
            "partner_id": None,
            "slices": [],
            "granted": False,
            "source": "unsubscribe-link",
            "text_version": "2026-01",
            "actor": None,
            "changed_at": _at(30),
        },
    ]
    return {
        "customer_id": CUSTOMER_ID,
        "version": 2,
        "consents": [
            {
                "purpose": "marketing",
                "channel": "email",
                "partner_id": None,
                "slices": [],
                "granted": False,
                "version": 2,
                "updated_at": _at(30),
            }
        ],
        "history": history,
    }


def metrics() -> dict[str, Any]:
    return {
        "customer_id": CUSTOMER_ID,
        "orders": 3,
        "revenue": "420.00",
        "average_order_value": "140.00",
        "average_order": "140.00",
        "first_order_at": _at(90),
        "last_order_at": _at(5),
        "recency_days": 5,
        "rfm": {"recency": 5, "frequency": 3, "monetary": 4, "combined": "534"},
        "lifetime_value": "610.00",
        "profit": "180.00",
        "tier": "gold",
        "profitability_tier": "gold",
        "loyalty_points": 42,
    }


ORDERS = ((90, "order-1", "100.00"), (40, "order-2", "120.00"), (5, "order-3", "200.00"))


def timeline_items(types: list[str]) -> list[dict[str, Any]]:
    """Timeline events, of the given short types (all when empty), newest first."""
    items = [
        _event(400, "customer.registered", "profile", {"acquisition_channel": "newsletter"}),
        _event(30, "consent.revoked", "profile", {"purpose": "marketing", "channel": "email"}),
        _event(20, "ticket.opened", "support", {"ticket_id": "t-1", "subject": "Kettle leaks"}),
        _event(12, "campaign.message.opened", "campaign", {"campaign_id": "cmp-1"}),
    ] + [
        _event(days, "order.completed", "profile", {"order_id": oid, "revenue": revenue})
        for days, oid, revenue in ORDERS
    ]
    wanted = set(types)
    chosen = [item for item in items if not wanted or _short(item["type"]) in wanted]
    return sorted(chosen, key=lambda item: item["occurred_at"], reverse=True)


def _short(event_type: str) -> str:
    return event_type.removeprefix("rapport.").removesuffix(".v1")


def _event(days_ago: int, short: str, service: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{short}-{days_ago}",
        "type": f"rapport.{short}.v1",
        "source": f"/services/{service}",
        "occurred_at": _at(days_ago),
        "data": {"customer_id": CUSTOMER_ID, **data},
    }


def audience() -> dict[str, Any]:
    return {
        "customer_id": CUSTOMER_ID,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
        "city": "London",
        "acquisition_channel": "newsletter",
        "registered_at": _at(400),
        "orders": 3,
        "revenue": "420.00",
        "segments": [SEGMENT_ID],
    }


def segments() -> list[dict[str, Any]]:
    return [
        {
            "id": SEGMENT_ID,
            "name": "Big spenders",
            "description": "revenue over 300",
            "rule": {"attribute": "revenue", "op": "gt", "value": 300},
            "time_dependent": False,
            "depends_on": [],
            "member_count": 17,
            "created_at": _at(100),
            "refreshed_at": _at(1),
        }
    ]


def support_context() -> dict[str, Any]:
    return {
        "customer_id": CUSTOMER_ID,
        "customer": {
            "customer_id": CUSTOMER_ID,
            "email": "ada@example.com",
            "phone": "+442079460000",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "country": "GB",
            "city": "London",
            "tier": "gold",
            "orders": 3,
            "revenue": "420.00",
            "lifetime_value": "610.00",
            "registered_at": _at(400),
        },
        "products": [
            {
                "product_id": "kettle-2",
                "product_model": "KT-200",
                "name": "Kettle 2",
                "category": "kitchen",
                "serial_number": "SN-77",
                "quantity": 1,
                "order_id": "order-2",
                "purchased_at": _at(40),
                "warranty_ends_on": "2028-10-21",
                "under_warranty": True,
            }
        ],
        "tickets": [
            {
                "id": "t-1",
                "subject": "Kettle leaks at the base",
                "status": "open",
                "priority": "high",
                "category": "hardware",
                "channel": "email",
                "product_model": "KT-200",
                "serial_number": "SN-77",
                "resolution": None,
                "rating": None,
                "created_at": _at(20),
                "resolved_at": None,
            }
        ],
        "open_tickets": 1,
        "mentions": [],
    }


def disclosures() -> dict[str, Any]:
    return {
        "disclosures": [
            {
                "id": "d-1",
                "partner_id": "p-1",
                "partner_name": "Acme Travel",
                "customer_id": CUSTOMER_ID,
                "partner_ref": "ref-9",
                "slices": ["contact", "demographics"],
                "fields": ["email", "country"],
                "purpose": "partner_sharing",
                "consent_version": 1,
                "request_id": "req-1",
                "disclosed_at": _at(15),
            }
        ],
        "next_cursor": None,
    }


def partner() -> dict[str, Any]:
    return {
        "id": "p-1",
        "name": "Acme Travel",
        "industry": "travel",
        "slices": ["contact", "demographics"],
        "purposes": ["joint_offers"],
        "webhook_url": None,
        "rate_limit_per_second": 20.0,
        "rate_limit_burst": 40,
        "created_at": _at(200),
        "deleted_at": None,
    }


def ticket() -> dict[str, Any]:
    summary = support_context()["tickets"][0]
    return {
        **summary,
        "customer_id": CUSTOMER_ID,
        "description": "Water at the base after each boil.",
        "assignee": "support",
        "duplicate_of": None,
        "mention_id": None,
        "rating_comment": None,
        "updated_at": _at(19),
        "first_responded_at": None,
        "closed_at": None,
        "first_response_due_at": _at(19),
        "resolution_due_at": _at(15),
        "breaches": [
            {"target": "resolution", "priority": "high", "due_at": _at(15), "breached_at": _at(15)}
        ],
    }


CAMPAIGN_ID = "cmp-1"


def campaign() -> dict[str, Any]:
    return {
        "id": CAMPAIGN_ID,
        "kind": "campaign",
        "name": "Winter sale",
        "channel": "email",
        "status": "completed",
        "segment_id": SEGMENT_ID,
        "customer_ids": None,
        "trigger": None,
        "trigger_config": {},
        "active": False,
        "variants": [{"name": "a", "subject": "Winter sale"}],
        "link": "https://shop.example/sale",
        "offer_prefix": None,
        "ab_test": None,
        "winner": None,
        "frequency_cap": None,
        "attribution_window_hours": 72.0,
        "scheduled_at": None,
        "launched_at": _at(20),
        "completed_at": _at(19),
        "created_at": _at(21),
    }


FUNNEL_COUNTS = {
    "targeted": 50,
    "suppressed": 10,
    "sent": 40,
    "delivered": 38,
    "opened": 20,
    "clicked": 9,
    "converted": 4,
}


def campaign_report() -> dict[str, Any]:
    return {
        **FUNNEL_COUNTS,
        "revenue": "380.00",
        "conversion_rate": 0.1,
        "campaign_id": CAMPAIGN_ID,
        "name": "Winter sale",
        "status": "completed",
        "attribution_model": "last_touch",
        "winner": None,
        "variants": [{**FUNNEL_COUNTS, "variant": "a", "revenue": "380.00"}],
    }


def export() -> dict[str, Any]:
    return {
        "service": "profile",
        "customer_id": CUSTOMER_ID,
        "records": {"customers": [customer()]},
        "services": {"support": {"tickets": support_context()["tickets"]}},
        "complete": True,
    }


def trends(params: httpx.QueryParams) -> dict[str, Any]:
    by = params.get("by", "none")
    groups = ["female", "male"] if by != "none" else ["all"]
    return {
        "metric": params.get("metric", "revenue"),
        "by": by,
        "interval": params.get("interval", "month"),
        "start": "2026-09-01",
        "end": "2026-11-30",
        "series": [
            {
                "group": group,
                "points": [
                    {"period": f"2026-{month:02d}-01", "value": 100.0 * month + i}
                    for month in (9, 10, 11)
                ],
            }
            for i, group in enumerate(groups)
        ],
    }


def tiers() -> dict[str, Any]:
    return {
        "ranked_customers": 30,
        "tiers": [
            {
                "tier": name,
                "customers": n,
                "revenue": r,
                "profit": r / 3,
                "min_profit": 0.0,
                "max_profit": r,
            }
            for name, n, r in (("platinum", 2, 5000.0), ("gold", 8, 4000.0), ("silver", 20, 2000.0))
        ],
    }


def forecast(params: httpx.QueryParams) -> dict[str, Any]:
    return {
        "metric": params.get("metric", "revenue"),
        "interval": params.get("interval", "month"),
        "method": "holt-winters",
        "history": [{"period": f"2026-{m:02d}-01", "value": 1000.0 + m} for m in (9, 10, 11)],
        "forecast": [{"period": "2026-12-01", "value": 1100.0}],
        "backtest": {
            "holdout": 1,
            "mae": 50.0,
            "mape": 0.05,
            "actual": [1011.0],
            "predicted": [990.0],
        },
        "fitted_at": _at(0),
        "age_s": 30.0,
    }


def channels() -> dict[str, Any]:
    return {
        "acquisition_channels": [
            {
                "acquisition_channel": "newsletter",
                "customers": 12,
                "buyers": 5,
                "orders": 9,
                "revenue": "900.00",
                "conversion_rate": 0.41,
            },
            {
                "acquisition_channel": "search",
                "customers": 30,
                "buyers": 6,
                "orders": 7,
                "revenue": "700.00",
                "conversion_rate": 0.2,
            },
        ],
        "campaigns": [
            {
                "campaign_id": "cmp-1",
                "name": "Winter sale",
                "channel": "email",
                "sent": 40,
                "converted": 4,
                "revenue": "380.00",
                "conversion_rate": 0.1,
            }
        ],
        "message_channels": [],
    }


class FakeServices:
    """An httpx transport that answers as the four services would."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.slow: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.slow_s = 5.0
        self.erased_at: str | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @contextmanager
    def service_down(self, name: str) -> Iterator[None]:
        self.down.add(name)
        try:
            yield
        finally:
            self.down.discard(name)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = urlsplit(str(request.url)).hostname or ""
        service = host.removesuffix(".test")
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if service in self.slow:
            await asyncio.sleep(self.slow_s)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"error": "unauthorized"})
        if request.method == "DELETE":
            body = self.erase(service, request.url.path)
        elif request.method == "POST":
            body = self.post(service, request.url.path, json.loads(request.content or b"null"))
        else:
            body = self.answer(service, request.url.path, request.url.params)
        if body is None:
            return httpx.Response(404, json={"error": "not_found", "message": "not found"})
        if isinstance(body, dict) and body.get("status") == 422:
            return httpx.Response(422, json=body["error"])
        return httpx.Response(
            200, content=json.dumps(body), headers={"content-type": "application/json"}
        )

    def answer(self, service: str, path: str, params: httpx.QueryParams) -> Any:
        """The JSON body of one service route, or None for 404."""
        prefix = f"/customers/{CUSTOMER_ID}"
        routes: dict[tuple[str, str], Any] = {
            ("profile", prefix): customer,
            ("profile", f"{prefix}/consents"): consents,
            ("profile", f"{prefix}/metrics"): metrics,
            ("profile", f"{prefix}/timeline"): lambda: {
                "customer_id": CUSTOMER_ID,
                "items": timeline_items(params.get_list("type")),
                "next_cursor": None,
            },
            ("profile", "/customers"): lambda: self.search(params),
            ("profile", f"{prefix}/export"): export,
            ("profile", f"{prefix}/erasure"): lambda: self.erasure(completed=True),
            ("profile", "/analytics/trends"): lambda: trends(params),
            ("profile", "/analytics/tiers"): tiers,
            ("profile", "/analytics/forecast"): lambda: forecast(params),
            ("campaign", f"/audience/{CUSTOMER_ID}"): audience,
            ("campaign", "/segments"): segments,
            ("campaign", f"/segments/{SEGMENT_ID}"): lambda: segments()[0],
            ("campaign", f"/segments/{SEGMENT_ID}/members"): lambda: {
                "segment_id": SEGMENT_ID,
                "count": 1,
                "members": [{"customer_id": CUSTOMER_ID, "entered_at": _at(3)}],
                "next_cursor": None,
            },
            ("campaign", "/campaigns"): lambda: [campaign()],
            ("campaign", f"/campaigns/{CAMPAIGN_ID}"): campaign,
            ("campaign", f"/campaigns/{CAMPAIGN_ID}/report"): campaign_report,
            ("campaign", "/analytics/channels"): channels,
            ("support", f"{prefix}/support-context"): support_context,
            ("support", "/tickets"): lambda: self.tickets(params),
            ("support", "/tickets/t-1"): ticket,
            ("partner-share", f"{prefix}/disclosures"): disclosures,
            ("partner-share", "/partners"): lambda: {"partners": [partner()]},
            ("partner-share", "/partners/p-1"): partner,
            ("partner-share", "/disclosures"): lambda: (
                disclosures()
                if params.get("partner_id") == "p-1"
                else {"disclosures": [], "next_cursor": None}
            ),
        }
        route = routes.get((service, path))
        return route() if route else None

    def post(self, service: str, path: str, body: Any) -> Any:
        """Campaign's segment preview (42 customers in GB, 7 otherwise) and creation."""
        if (service, path) == ("campaign", "/segments/preview"):
            return {
                "count": 42 if "GB" in json.dumps(body) else 7,
                "sample": [],
                "time_dependent": False,
            }
        if (service, path) == ("partner-share", "/partners"):
            if not body.get("slices"):
                return {"error": {"message": "slices: at least one"}, "status": 422}
            return {
                **partner(),
                "id": "p-2",
                "name": body["name"],
                "api_key": "rpk_" + "k" * 40,
                "webhook_secret": "whsec_" + "s" * 40,
            }
        if (service, path) == ("campaign", "/segments"):
            return {**segments()[0], "id": "seg-new", "name": body["name"], "rule": body["rule"]}
        return None

    def tickets(self, params: httpx.QueryParams) -> dict[str, Any]:
        """The queue: the one ticket when the filters let it through."""
        one = ticket()
        keep = (
            params.get("status") in (None, one["status"])
            and params.get("priority") in (None, one["priority"])
            and params.get("product_model") in (None, one["product_model"])
            and params.get("breached") in (None, "true")
        )
        return {"items": [one] if keep else [], "next_cursor": None}

    def erase(self, service: str, path: str) -> Any:
        """Profile's DELETE /customers/{id}: the erasure starts, pending in the others."""
        if (service, path) != ("profile", f"/customers/{CUSTOMER_ID}"):
            return None
        self.erased_at = _at(0)
        return self.erasure(completed=False)

    def erasure(self, completed: bool) -> dict[str, Any] | None:
        if self.erased_at is None:
            return None
        others = ("campaign", "support", "partner-share")
        return {
            "customer_id": CUSTOMER_ID,
            "status": "completed" if completed else "pending",
            "requested_at": self.erased_at,
            "completed_at": self.erased_at if completed else None,
            "services": {
                "profile": self.erased_at,
                **{name: self.erased_at if completed else None for name in others},
            },
            "status_url": f"/customers/{CUSTOMER_ID}/erasure",
        }

    def search(self, params: httpx.QueryParams) -> dict[str, Any]:
        ada = customer()
        matches = (
            params.get("email") == ada["email"]
            or params.get("phone") == ada["phone"]
            or params.get("external_id") == "shop:c-1815"
            or (params.get("q") or "").lower() in ("ada", "lovelace", "ada lovelace")
        )
        items = (
            [{k: v for k, v in ada.items() if k not in ("traits", "accounts")}] if matches else []
        )
        return {"items": items, "next_cursor": None}


def stubbed_app() -> Any:
    """The console with the services answered in-process (no network): the bench's baseline.

    `uvicorn --factory rapport_console.testing:stubbed_app`; the environment still gives
    the database (CONSOLE_DATABASE_URL) and the rest of the settings.
    """
    from rapport_console.main import create_app

    urls = {
        f"{name.replace('-', '_')}_url": f"http://{name}.test:{port}"
        for name, port in PORTS.items()
    }
    settings = Settings(api_token=TOKEN, **urls)  # type: ignore[arg-type]
    return create_app(settings, transport=FakeServices().transport())
