"""Known customers over HTTP, with the real lifespan, a real broker and a real database."""

import httpx
from fastapi import FastAPI
from partner_share_testing import AUTH, apply, everything_stored

from rapport_events.types import CustomerRegistered


class TestKnownCustomer:
    async def test_an_unknown_customer_is_404_json(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/customers/nobody", headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_a_registration_shows_up_without_personal_data(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        await apply(
            app,
            CustomerRegistered(
                customer_id="c-1", email="grace@example.com", first_name="Grace", last_name="H"
            ),
        )

        response = await client.get("/customers/c-1", headers=AUTH)

        assert response.status_code == 200, response.text
        assert set(response.json()) == {"customer_id", "known_since"}
        assert "grace@example.com" not in await everything_stored(app)
