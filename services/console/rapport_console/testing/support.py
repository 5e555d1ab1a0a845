"""Support's replies as the fakes give them: a customer's support context and a ticket."""

from typing import Any

from rapport_console.testing.common import CUSTOMER_ID, at


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
            "registered_at": at(400),
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
                "purchased_at": at(40),
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
                "created_at": at(20),
                "resolved_at": None,
            }
        ],
        "open_tickets": 1,
        "mentions": [],
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
        "updated_at": at(19),
        "first_responded_at": None,
        "closed_at": None,
        "first_response_due_at": at(19),
        "resolution_due_at": at(15),
        "breaches": [
            {"target": "resolution", "priority": "high", "due_at": at(15), "breached_at": at(15)}
        ],
    }
