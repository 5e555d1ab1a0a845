"""Support's replies as the fakes give them: a customer's support context, a ticket with its
comments, and a social mention with its replies."""

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
        "comments": [comment("c-1", "It drips on the counter.", "ada", author_type="customer")],
        "links": [],
    }


def comment(
    comment_id: str, body: str, author: str, *, author_type: str = "agent", public: bool = True
) -> dict[str, Any]:
    return {
        "id": comment_id,
        "ticket_id": "t-1",
        "author": author,
        "author_type": author_type,
        "body": body,
        "public": public,
        "created_at": at(19),
    }


MENTION_ID = "m-1"


def mention() -> dict[str, Any]:
    """A complaint on Mastodon from a known customer, not answered yet."""
    return {
        "id": MENTION_ID,
        "platform": "mastodon",
        "handle": "@ada@example.social",
        "external_id": "109",
        "text": "@rapport my new kettle leaks, again",
        "url": "https://example.social/@ada/109",
        "posted_at": at(2),
        "received_at": at(2),
        "customer_id": CUSTOMER_ID,
        "sentiment": "negative",
        "sentiment_score": -0.6,
        "kind": "complaint",
        "status": "new",
        "ticket_id": None,
        "replies": [],
    }


def reply(text: str, author: str, number: int) -> dict[str, Any]:
    """A reply queued for the platform's webhook (support posts it, with retries)."""
    return {
        "id": f"r-{number}",
        "mention_id": MENTION_ID,
        "text": text,
        "author": author,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at(0),
        "last_error": None,
        "created_at": at(0),
        "sent_at": None,
        "delivery": [],
    }
