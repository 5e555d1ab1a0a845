"""Analytics over HTTP: trends and forecasts, out of range and from orders tracked through
the real broker into a real database."""

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from profile_testing import AUTH, BASIC, create

from rapport_events.testing.harness import poll_until

OUT_OF_RANGE_ANALYTICS = {
    "trends to the last day of the calendar": ("/analytics/trends", {"to": "9999-12-31"}),
    "trends to the first day, without from": ("/analytics/trends", {"to": "0001-01-01"}),
    "trends over the whole calendar by day": (
        "/analytics/trends",
        {"from": "0001-01-01", "to": "9999-12-31", "interval": "day"},
    ),
    "trends over three centuries by day": (
        "/analytics/trends",
        {"from": "1900-01-01", "to": "2199-12-31", "interval": "day"},
    ),
    "forecast to the last day of the calendar": ("/analytics/forecast", {"to": "9999-12-31"}),
    "forecast to the first day, without from": ("/analytics/forecast", {"to": "0001-01-01"}),
    "forecast over the whole calendar by month": (
        "/analytics/forecast",
        {"from": "0001-01-01", "to": "9999-12-31", "interval": "month"},
    ),
}


class TestAnalyticsOutOfRange:
    @pytest.mark.parametrize("case", list(OUT_OF_RANGE_ANALYTICS))
    async def test_each_is_422_json(self, client: httpx.AsyncClient, case: str) -> None:
        path, params = OUT_OF_RANGE_ANALYTICS[case]

        response = await client.get(path, params=params, headers=AUTH)

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_request"

    async def test_a_thousand_weeks_still_answer(self, client: httpx.AsyncClient) -> None:
        start = date(2000, 1, 3)  # a Monday: exactly 1000 weeks
        params = {"from": str(start), "to": str(start + timedelta(weeks=1000, days=-1))}

        response = await client.get("/analytics/trends", params=params, headers=AUTH)

        assert response.status_code == 200, response.text
        assert len(response.json()["series"][0]["points"]) == 1000


async def order_weeks(client: httpx.AsyncClient, revenues: list[int]) -> None:
    """One order per week from Monday 5 January 2026, with the given revenues."""
    customer = await create(client)
    monday = date(2026, 1, 5)
    calls = [
        {
            "type": "track",
            "userId": customer["id"],
            "event": "Order Completed",
            "messageId": f"w-{n}",
            "timestamp": f"{monday + timedelta(weeks=n)}T10:00:00Z",
            "properties": {"order_id": f"w-{n}", "revenue": revenue},
        }
        for n, revenue in enumerate(revenues)
    ]
    tracked = await client.post("/v1/batch", json={"batch": calls}, headers=BASIC)
    assert tracked.status_code == 200, tracked.text

    async def recorded() -> bool:
        metrics = await client.get(f"/customers/{customer['id']}/metrics", headers=AUTH)
        return metrics.status_code == 200 and metrics.json()["orders"] == len(revenues)

    assert await poll_until(recorded)


WEEKS = {"from": "2026-01-05", "to": "2026-03-01", "interval": "week", "periods": 3}


@pytest.mark.consumes
class TestForecastOverHttp:
    async def test_a_rising_history_is_continued_with_its_backtest(
        self, client: httpx.AsyncClient
    ) -> None:
        revenues = [100, 110, 120, 130, 140, 150, 160, 170]
        await order_weeks(client, revenues)

        response = await client.get("/analytics/forecast", params=WEEKS, headers=AUTH)

        assert response.status_code == 200, response.text
        body = response.json()
        assert [p["value"] for p in body["history"]] == revenues
        assert [p["period"] for p in body["forecast"]] == ["2026-03-02", "2026-03-09", "2026-03-16"]
        assert all(p["value"] > 170 for p in body["forecast"])
        assert "statsmodels" in body["method"]
        assert body["backtest"]["holdout"] == 2
        assert body["backtest"]["actual"] == [160, 170]
        assert body["backtest"]["mae"] < 20

    @pytest.mark.parametrize("failure", ["the fit raises", "the forecast is NaN"])
    async def test_a_model_that_fails_is_422_not_500(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        failure: str,
    ) -> None:
        import numpy as np
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        class NanResults:
            def forecast(self, steps: int) -> Any:
                return np.full(steps, np.nan)

        def broken_fit(*_args: Any, **_kwargs: Any) -> Any:
            if failure == "the fit raises":
                raise np.linalg.LinAlgError("SVD did not converge")
            return NanResults()

        await order_weeks(client, [100, 110, 120, 130, 140, 150, 160, 170])
        monkeypatch.setattr(ExponentialSmoothing, "fit", broken_fit)
        # Fit on a thread of this process, where the patch is (not in the worker process).
        monkeypatch.setattr(app.state.forecaster, "worker", None)

        response = await client.get("/analytics/forecast", params=WEEKS, headers=AUTH)

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_request"
