"""Profile's replies as the fakes give them: the customer, consents, metrics, timeline,
export and analytics."""

from decimal import Decimal
from typing import Any

import httpx

from rapport_console.testing.common import CUSTOMER_ID, at
from rapport_console.testing.support import support_context


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
        "created_at": at(400),
        "updated_at": at(10),
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
            "changed_at": at(400),
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
            "changed_at": at(30),
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
                "updated_at": at(30),
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
        "first_order_at": at(90),
        "last_order_at": at(5),
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


def spend() -> list[dict[str, Any]]:
    """The orders of `ORDERS` per month, as profile's overview sums them."""
    months: dict[str, tuple[int, Decimal]] = {}
    for days, _order, revenue in ORDERS:
        month = at(days)[:7]
        orders, total = months.get(month, (0, Decimal(0)))
        months[month] = (orders + 1, total + Decimal(revenue))
    return [
        {"month": month, "orders": orders, "revenue": str(total)}
        for month, (orders, total) in sorted(months.items())
    ]


def overview(types: list[str], limit: int) -> dict[str, Any]:
    """Profile's overview of the customer: the parts above in one answer."""
    return {
        "customer": customer(),
        "consents": consents(),
        "metrics": metrics(),
        "timeline": {
            "customer_id": CUSTOMER_ID,
            "items": timeline_items(types)[:limit],
            "next_cursor": None,
        },
        "spend": spend(),
    }


def _short(event_type: str) -> str:
    return event_type.removeprefix("rapport.").removesuffix(".v1")


def _event(days_ago: int, short: str, service: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{short}-{days_ago}",
        "type": f"rapport.{short}.v1",
        "source": f"/services/{service}",
        "occurred_at": at(days_ago),
        "data": {"customer_id": CUSTOMER_ID, **data},
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
        "fitted_at": at(0),
        "age_s": 30.0,
    }
