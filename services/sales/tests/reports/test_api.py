"""Pipeline by stage and owner, weighted forecast per month, win rate and cycle time, and
the forecast's backtest on a history of deals."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sales_testing import AUTH, ProfileStandIn

from rapport_events.base import utcnow
from rapport_events.db import transaction
from rapport_sales.opportunities.models import SalesOpportunity, SalesStageChange

PROBABILITY = {"lead": "0.1", "qualified": "0.25", "proposal": "0.5", "negotiation": "0.75"}


async def store_deals(app: FastAPI, deals: list[dict[str, Any]]) -> None:
    """History written straight to the tables: deals opened and closed in the past."""
    async with transaction(app.state.runtime.sessions) as session:
        for n, deal in enumerate(deals):
            created = deal.pop("created_at")
            changes = deal.pop("changes", [])
            row = SalesOpportunity(
                id=f"opp-{n}",
                pipeline_id="default",
                account_id="acc-1",
                name=f"Deal {n}",
                currency="EUR",
                created_at=created,
                updated_at=created,
                probability=Decimal(
                    PROBABILITY.get(
                        deal.get("stage", "lead"), "1" if deal.get("status") == "won" else "0"
                    )
                ),
                **{"stage": "lead", **deal},
            )
            session.add(row)
            session.add(
                SalesStageChange(opportunity_id=row.id, to_stage="lead", changed_at=created)
            )
            for at, stage in changes:
                session.add(SalesStageChange(opportunity_id=row.id, to_stage=stage, changed_at=at))


def month_ahead(months: int, day: int = 15) -> date:
    today = utcnow().date()
    index = today.year * 12 + today.month - 1 + months
    return date(index // 12, index % 12 + 1, day)


class TestPipelineReport:
    async def test_open_deals_by_stage_and_owner_with_weighted_amounts(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        now = utcnow()
        await store_deals(
            app,
            [
                {"created_at": now, "stage": "lead", "owner": "ann", "amount": Decimal("1000")},
                {"created_at": now, "stage": "proposal", "owner": "ann", "amount": Decimal("400")},
                {"created_at": now, "stage": "proposal", "owner": "bob", "amount": Decimal("600")},
                {
                    "created_at": now,
                    "stage": "won",
                    "status": "won",
                    "owner": "bob",
                    "amount": Decimal("9999"),
                    "closed_at": now,
                },
            ],
        )

        report = (await client.get("/reports/pipeline", headers=AUTH)).json()
        anns = (await client.get("/reports/pipeline?owner=ann", headers=AUTH)).json()
        unknown = await client.get("/reports/pipeline?pipeline_id=nope", headers=AUTH)

        assert [(s["stage"], s["count"], s["amount"], s["weighted"]) for s in report["stages"]] == [
            ("lead", 1, "1000.00", "100.00"),
            ("proposal", 2, "1000.00", "500.00"),
        ]
        assert [(o["owner"], o["count"], o["amount"], o["weighted"]) for o in report["owners"]] == [
            ("ann", 2, "1400.00", "300.00"),
            ("bob", 1, "600.00", "300.00"),
        ]
        assert [s["count"] for s in anns["stages"]] == [1, 1]
        assert unknown.status_code == 404


class TestForecast:
    async def test_weighted_amounts_per_close_month_next_to_profile_s_forecast(
        self, make_app: Any, profile: ProfileStandIn
    ) -> None:
        profile.forecast = {"metric": "revenue", "interval": "month", "forecast": [{"value": 5}]}
        async with make_app(profile_url=profile.url) as (app, client):
            now = utcnow()
            await store_deals(
                app,
                [
                    {
                        "created_at": now,
                        "stage": "proposal",
                        "amount": Decimal("1000"),
                        "expected_close_date": month_ahead(1, 3),
                    },
                    {
                        "created_at": now,
                        "stage": "negotiation",
                        "amount": Decimal("2000"),
                        "expected_close_date": month_ahead(1, 28),
                    },
                    {
                        "created_at": now,
                        "stage": "lead",
                        "amount": Decimal("500"),
                        "expected_close_date": month_ahead(2),
                    },
                    {
                        "created_at": now - timedelta(days=90),
                        "stage": "lead",
                        "amount": Decimal("300"),
                        "expected_close_date": month_ahead(-2),
                    },
                    {
                        "created_at": now,
                        "stage": "lead",
                        "amount": Decimal("7"),
                        "expected_close_date": month_ahead(9),
                    },
                ],
            )

            reply = (await client.get("/reports/forecast?months=3", headers=AUTH)).json()
            profile.forecast = None
            without_profile = (await client.get("/reports/forecast", headers=AUTH)).json()

        assert [(m["month"], m["count"], m["amount"], m["weighted"]) for m in reply["months"]] == [
            (month_ahead(1, 1).isoformat(), 2, "3000.00", "2000.00"),
            (month_ahead(2, 1).isoformat(), 1, "500.00", "50.00"),
        ]
        assert [(m["month"], m["weighted"]) for m in reply["overdue"]] == [
            (month_ahead(-2, 1).isoformat(), "30.00")
        ]
        assert reply["historical"]["forecast"] == [{"value": 5}]
        assert without_profile["historical"] is None
        assert "503" in without_profile["historical_error"]

    async def test_the_backtest_scores_the_forecast_against_what_was_won(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        """The forecast at the end of March against April-June as they turned out: deals
        won with their stage's probability, so the error is sampling noise only."""
        rng = random.Random(19)
        as_of = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
        deals = []
        for month in (4, 5, 6):
            for _ in range(120):
                stage = rng.choice(list(PROBABILITY))
                amount = Decimal(rng.randrange(500, 5000))
                close = date(2026, month, rng.randrange(1, 28))
                won = rng.random() < float(PROBABILITY[stage])
                deals.append(
                    {
                        "created_at": as_of - timedelta(days=rng.randrange(20, 60)),
                        "changes": [(as_of - timedelta(days=5), stage)],
                        "stage": "won" if won else "lost",
                        "status": "won" if won else "lost",
                        "amount": amount,
                        "expected_close_date": close,
                        "closed_at": datetime.combine(close, datetime.min.time(), UTC),
                    }
                )
        await store_deals(app, deals)

        reply = await client.get(
            "/reports/forecast/backtest",
            params={"as_of": as_of.isoformat(), "months": 3},
            headers=AUTH,
        )
        naive = await client.get(
            "/reports/forecast/backtest", params={"as_of": "2026-03-31T23:00:00"}, headers=AUTH
        )

        assert reply.status_code == 200, reply.text
        backtest = reply.json()
        print("forecast backtest:", backtest)
        assert [m["month"] for m in backtest["months"]] == [
            "2026-04-01",
            "2026-05-01",
            "2026-06-01",
        ]
        assert all(Decimal(m["actual"]) > 0 for m in backtest["months"])
        assert backtest["mape"] is not None and backtest["mape"] < 0.2
        assert naive.status_code == 422


class TestWinRate:
    async def test_win_rate_and_cycle_time_of_closed_deals(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        closed = datetime(2026, 5, 20, 12, tzinfo=UTC)
        await store_deals(
            app,
            [
                {
                    "created_at": closed - timedelta(days=10),
                    "closed_at": closed,
                    "status": "won",
                    "stage": "won",
                    "owner": "ann",
                    "amount": Decimal("100"),
                },
                {
                    "created_at": closed - timedelta(days=20),
                    "closed_at": closed,
                    "status": "won",
                    "stage": "won",
                    "owner": "ann",
                    "amount": Decimal("50"),
                },
                {
                    "created_at": closed - timedelta(days=30),
                    "closed_at": closed,
                    "status": "lost",
                    "stage": "lost",
                    "owner": "bob",
                    "amount": Decimal("70"),
                },
                {
                    "created_at": closed - timedelta(days=5),
                    "closed_at": closed - timedelta(days=60),
                    "status": "won",
                    "stage": "won",
                    "owner": "bob",
                    "amount": Decimal("1"),
                },
                {"created_at": closed, "stage": "lead", "owner": "bob", "amount": Decimal("5")},
            ],
        )

        report = (
            await client.get(
                "/reports/win-rate", params={"from": "2026-05-01T00:00:00Z"}, headers=AUTH
            )
        ).json()

        assert (report["won"], report["lost"], report["win_rate"]) == (2, 1, 0.6667)
        assert report["won_amount"] == "150.00"
        assert report["average_cycle_days"] == pytest.approx(20.0, abs=0.01)
        assert [(o["owner"], o["win_rate"], o["average_cycle_days"]) for o in report["owners"]] == [
            ("ann", 1.0, pytest.approx(15.0, abs=0.01)),
            ("bob", 0.0, pytest.approx(30.0, abs=0.01)),
        ]


class TestDatesAtTheCalendarsEdge:
    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/reports/forecast/backtest", {"as_of": "0001-01-01T00:00:00+01:00"}),
            ("/reports/forecast/backtest", {"as_of": "9999-12-31T23:00:00-02:00"}),
            ("/reports/win-rate", {"from": "0001-01-01T00:00:00+01:00"}),
            ("/reports/win-rate", {"to": "9999-12-31T23:59:59-01:00"}),
            ("/reports/forecast", {"from": "0001-01-01"}),
        ],
    )
    async def test_a_date_the_database_cannot_hold_is_a_422(
        self, client: httpx.AsyncClient, path: str, params: dict[str, str]
    ) -> None:
        reply = await client.get(path, params=params, headers=AUTH)

        assert reply.status_code == 422, reply.text
        assert "must lie between" in reply.text
