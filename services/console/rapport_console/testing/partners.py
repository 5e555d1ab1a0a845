"""Partner-share's replies as the fakes give them: a partner and its disclosures."""

from typing import Any

from rapport_console.testing.common import CUSTOMER_ID, at


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
                "disclosed_at": at(15),
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
        "created_at": at(200),
        "deleted_at": None,
    }
