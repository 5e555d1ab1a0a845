"""Campaign's replies as the fakes give them: audience, segments, campaigns and their
reports, channel analytics."""

from typing import Any

from rapport_console.testing.common import CAMPAIGN_ID, CUSTOMER_ID, SEGMENT_ID, at


def audience() -> dict[str, Any]:
    return {
        "customer_id": CUSTOMER_ID,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
        "city": "London",
        "acquisition_channel": "newsletter",
        "registered_at": at(400),
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
            "created_at": at(100),
            "refreshed_at": at(1),
        }
    ]


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
        "launched_at": at(20),
        "completed_at": at(19),
        "created_at": at(21),
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


def preview(campaign_id: str, customer_id: str) -> dict[str, Any]:
    """A campaign's message rendered for one customer (subject and body of variant A)."""
    return {
        "campaign_id": campaign_id,
        "customer_id": customer_id,
        "variant": "A",
        "channel": "email",
        "subject": "Ada, the winter sale is on",
        "text": "Hello Ada, 20% off until Sunday: https://shop.example/sale",
        "html": None,
    }
