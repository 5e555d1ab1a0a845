"""The read-path baseline: a bare FastAPI app that returns a JSON dict, nothing else.

Served by the same uvicorn (same flags) as the services, and loaded by the same
client, so the ratio is what the services add: auth, a session, a query, a
response model.
"""

from typing import Any

from fastapi import FastAPI

app = FastAPI(title="bench bare app")

CUSTOMER: dict[str, Any] = {
    "email": "ada@example.com",
    "phone": "+441632960961",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "birth_date": None,
    "gender": None,
    "income_band": None,
    "education": None,
    "country": "GB",
    "city": "London",
    "acquisition_channel": None,
    "social_handles": {},
    "external_ids": {},
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/customers/{customer_id}")
async def read_customer(customer_id: str) -> dict[str, Any]:
    """A customer-shaped dict, from memory."""
    return {"id": customer_id, **CUSTOMER}
