"""Forecast models fitted ahead of time: one fit for callers at once, the refresh, the models
stored for a new process, and the worker process that fits them."""

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from profile_testing import (
    deliver,
    order,
    register,
)

from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, transaction
from rapport_profile.analytics import service as analytics_service
from rapport_profile.analytics import store as analytics_store
from rapport_profile.analytics.forecasts import FitWorker, Forecaster, Key
from rapport_profile.analytics.service import NotEnoughHistory


class TestForecastModelsFittedAheadOfTime:
    async def test_requests_read_the_fitted_model_and_say_how_old_it_is(
        self, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        fits: list[tuple[Any, ...]] = []
        fit = analytics_service.forecast

        async def counted(session: Any, **arguments: Any) -> Any:
            fits.append(tuple(arguments.values()))
            return await fit(session, **arguments)

        monkeypatch.setattr(analytics_service, "forecast", counted)
        forecaster = Forecaster(sessions)
        end = start + timedelta(weeks=9, days=6)
        key: Key = ("revenue", "week", None, start, end)

        first, same = await asyncio.gather(forecaster.forecast(key, 2), forecaster.forecast(key, 2))
        later = await forecaster.forecast(key, 5)

        assert len(fits) == 1  # one fit for the two callers at once and the later one
        assert [p.period for p in first.forecast] == [date(2026, 3, 16), date(2026, 3, 23)]
        assert same.forecast == first.forecast and later.forecast[:2] == first.forecast
        assert len(later.forecast) == 5 and later.fitted_at == first.fitted_at
        assert 0 <= first.age_s <= later.age_s
        assert first.backtest.holdout == 2  # a quarter of the ten weeks

    async def test_the_refresh_fits_every_default_model_and_the_windows_asked_for(
        self, sessions: SessionFactory
    ) -> None:
        forecaster = Forecaster(sessions)
        asked: Key = ("orders", "week", None, date(2026, 1, 5), date(2026, 1, 19))
        with pytest.raises(NotEnoughHistory):  # three weeks are too few
            await forecaster.forecast(asked, 3)

        await forecaster.refresh()

        fitted = set(forecaster._models)
        assert set(forecaster.default_keys()) <= fitted and asked in fitted
        assert len(forecaster.default_keys()) == 12  # four metrics, three intervals
        default = await forecaster.forecast(("revenue", "week", None, None, None), 4)
        assert len(default.forecast) == 4 and forecaster.rounds == 1

    async def test_a_new_process_answers_from_the_stored_models_without_fitting(
        self, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        key: Key = ("revenue", "week", None, start, start + timedelta(weeks=9, days=6))
        fitted = await Forecaster(sessions).forecast(key, 3)
        async with transaction(sessions) as session:
            await analytics_store.save_forecast_model(session, "revenue|week|x|-|-", {}, utcnow())
            await analytics_store.save_forecast_model(
                session, "orders|week|-|-|-", {"old": 1}, utcnow()
            )

        async def no_fit(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("a stored model was fitted again")

        monkeypatch.setattr(analytics_service, "forecast", no_fit)
        restarted = Forecaster(sessions)
        loaded = await restarted.load()
        again = await restarted.forecast(key, 3)

        assert loaded == 1  # the rows it cannot read are left to the next fit
        assert again.forecast == fitted.forecast and again.fitted_at == fitted.fitted_at
        assert again.age_s >= fitted.age_s

    async def test_fits_run_in_a_worker_process_that_is_replaced_when_it_dies(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        start = date(2026, 1, 5)
        for week in range(10):
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), tzinfo=UTC)
            await deliver(sessions, order(ada, f"o-{week}", str(100 + 10 * week), at))
        end = start + timedelta(weeks=9, days=6)
        worker = FitWorker()
        in_process = Forecaster(sessions, worker)
        on_thread = Forecaster(sessions)
        try:
            key: Key = ("revenue", "week", None, start, end)
            fitted = await in_process.forecast(key, 3)
            [process] = worker.started()._processes.values()  # type: ignore[attr-defined]
            process.kill()
            process.join()
            other: Key = ("revenue", "week", None, start, end - timedelta(weeks=1))
            after_death = await in_process.forecast(other, 3)
        finally:
            await worker.stop()

        assert fitted.forecast == (await on_thread.forecast(key, 3)).forecast
        assert after_death.forecast == (await on_thread.forecast(other, 3)).forecast
