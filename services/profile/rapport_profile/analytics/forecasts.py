"""Forecast models fitted ahead of time, so a request reads a fitted model instead of
fitting one.

At start-up and then every `PROFILE_FORECAST_REFRESH_S` a supervised loop fits the
default window (the 90 days to today) of every metric and interval, plus every other
window asked for recently. The fits run in one worker process (`FitWorker`), which
imports statsmodels (seconds) when the first fit needs it: a fit or that import on a
thread of the service's own process held its GIL for seconds, and every request served
meanwhile waited for it (the first forecast call after a start took 1.7-5 s). A
request served from a fitted model slices its forecast to the periods asked for; one for
a window not fitted yet is fitted then (and kept, so the loop refreshes it from then on).
Every reply says when its model was fitted (`fitted_at`) and how old it is (`age_s`).

Every fitted model is also stored (`profile_forecast_models`), and a process reads them
back before it reports ready: importing statsmodels alone takes 3-6 s on a small
machine, so a restarted process would otherwise keep its first forecast call waiting
for the import and a fit. It answers from the stored model, with its age, until its own
first round replaces it. Without a stored model of the API's default forecast (a new
database with history, or history that came after the last fit), the process fits that
one before it reports ready, so the first call never waits for the import.
"""

import asyncio
import logging
import multiprocessing
import time
from collections import OrderedDict
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, get_args

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from rapport_events.aio import cancel_and_wait
from rapport_events.base import utcnow
from rapport_events.db import SessionFactory, read_transaction, transaction
from rapport_events.tracing import background_span
from rapport_profile.analytics import service, store
from rapport_profile.analytics.periods import requested_range
from rapport_profile.analytics.service import ForecastReply, Interval, Metric, NotEnoughHistory
from rapport_profile.unit_of_work import SqlProfileUnitOfWork

MAX_HORIZON = 104  # the most periods a request may ask for


# (metric, interval, seasonal periods, from, to); None dates: the default window, today's.
Key = tuple[Metric, Interval, int | None, date | None, date | None]


log = logging.getLogger(__name__)


DEFAULT_KEY: Key = ("revenue", "week", None, None, None)  # what GET /analytics/forecast asks


def key_text(key: Key) -> str:
    """The stored form of a key: `revenue|week|-|-|-`."""
    return "|".join("-" if part is None else str(part) for part in key)


def key_from_text(text: str) -> Key | None:
    """The key a stored row is for; None for a row this version cannot read."""
    parts = text.split("|")
    if len(parts) != 5:
        return None
    metric, interval, seasonal, start, end = (None if p == "-" else p for p in parts)
    if metric not in get_args(Metric) or interval not in get_args(Interval):
        return None
    try:
        return (
            metric,  # type: ignore[return-value]
            interval,
            int(seasonal) if seasonal else None,
            date.fromisoformat(start) if start else None,
            date.fromisoformat(end) if end else None,
        )
    except ValueError:
        return None


class FitWorker:
    """The one process the models are fitted in, started when the first fit needs it and
    replaced if it dies."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def started(self) -> Executor:
        """The worker, started now if it is not running yet."""
        if self._pool is None:
            # spawn, not fork: the service's process runs threads (a fork copies their locks).
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=import_model_library,
            )
        return self._pool

    def replace(self) -> None:
        """Drop a worker that died; the next fit starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    async def stop(self) -> None:
        """End the worker without waiting for a fit in progress: it holds nothing to save,
        and a fit (or the import before it) takes seconds a shutdown should not wait."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # The pool has no public way to end a busy worker; its processes are the children.
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        await asyncio.to_thread(_join_all, processes, JOIN_TIMEOUT_S)


JOIN_TIMEOUT_S = 5.0


def _join_all(processes: list[Any], timeout: float) -> None:
    for process in processes:
        process.join(timeout)


@dataclass
class Forecaster:
    """The fitted forecasts of one profile process, by request."""

    sessions: SessionFactory
    # None: fit on a thread of this process (tests that patch the model library do).
    worker: FitWorker | None = None
    max_models: int = 64
    _models: OrderedDict[Key, ForecastReply | NotEnoughHistory] = field(default_factory=OrderedDict)
    _fitting: dict[Key, asyncio.Task[ForecastReply | NotEnoughHistory]] = field(
        default_factory=dict
    )
    rounds: int = 0
    _stopping: bool = False

    async def stop(self) -> None:
        """Cancel the fits in progress and end the worker (a stopping process fits nothing)."""
        self._stopping = True
        for task in list(self._fitting.values()):
            await cancel_and_wait(task)
        if self.worker is not None:
            await self.worker.stop()

    async def load(self) -> int:
        """Read the stored models back (the newest first, up to `max_models`); how many."""
        # At start-up, outside any request: one trace of its own, not a parentless statement.
        with background_span("profile load forecasts"):
            async with read_transaction(self.sessions) as session:
                rows = await store.forecast_models(session, self.max_models)
        for row in reversed(rows):  # the newest ends last: the last to be evicted
            key = key_from_text(row.key)
            try:
                reply = ForecastReply.model_validate(row.reply) if key else None
            except ValidationError:
                reply = None  # written by another version of the reply: fitted again
            if key is not None and reply is not None:
                self._models[key] = reply
        return len(self._models)

    async def ensure(self, key: Key) -> None:
        """Fit `key` now unless a model of it is held (loaded or fitted)."""
        if key not in self._models:
            with background_span("profile fit forecasts", model=key_text(key)):
                await self._fit(key)

    def default_keys(self) -> list[Key]:
        """Every metric and interval over the default window, the API's default first
        (revenue by week), then by interval, as a dashboard asks for them."""
        intervals = sorted(get_args(Interval), key=lambda i: (i != "week", i))
        metrics = sorted(get_args(Metric), key=lambda m: (m != "revenue", m))
        return [
            (metric, interval, None, None, None) for interval in intervals for metric in metrics
        ]

    async def refresh(self) -> bool:
        """Fit every default and recently asked model again (the supervised loop's step)."""
        # One trace for the round, not a trace per statement of each fit.
        with background_span("profile fit forecasts"):
            for key in [*self.default_keys(), *(k for k in self._models if k[3] or k[4])]:
                await self._fit(key)
        self.rounds += 1
        return False

    async def forecast(self, key: Key, periods: int) -> ForecastReply:
        """The forecast of `key` for `periods` periods, from its fitted model."""
        found = self._models.get(key)
        if found is None:
            found = await self._fit(key)
        else:
            self._models.move_to_end(key)
        if isinstance(found, NotEnoughHistory):
            raise found
        age = max((utcnow() - found.fitted_at).total_seconds(), 0.0)
        return found.model_copy(update={"forecast": found.forecast[:periods], "age_s": age})

    async def _fit(self, key: Key) -> ForecastReply | NotEnoughHistory:
        # Two callers asking for the same model share one fit.
        task = self._fitting.get(key)
        if task is None:
            task = asyncio.create_task(self._fit_now(key))
            self._fitting[key] = task
            task.add_done_callback(lambda _: self._fitting.pop(key, None))
        return await asyncio.shield(task)

    async def _fit_now(
        self, key: Key, *, retried: bool = False
    ) -> ForecastReply | NotEnoughHistory:
        metric, interval, seasonal_periods, start, end = key
        window = requested_range(start, end, interval)
        result: ForecastReply | NotEnoughHistory
        try:
            async with read_transaction(self.sessions) as session:
                reply = await service.forecast(
                    SqlProfileUnitOfWork(session),
                    metric=metric,
                    interval=interval,
                    start=window[0],
                    end=window[1],
                    horizon=MAX_HORIZON,
                    seasonal_periods=seasonal_periods,
                    # Asked for only when there is history to fit: a process start costs
                    # seconds of CPU, and a new database has nothing to fit.
                    executor=self.worker.started if self.worker else None,
                )
        except BrokenExecutor:
            if self.worker is None or retried or self._stopping:
                raise
            self.worker.replace()  # killed (out of memory, say): fit once more on a new one
            return await self._fit_now(key, retried=True)
        except NotEnoughHistory as refused:
            result = refused  # kept too: asking again before new data changes nothing
        else:
            await self._store(key, reply)
            result = reply
        self._models[key] = result
        self._models.move_to_end(key)
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)
        return result

    async def _store(self, key: Key, reply: ForecastReply) -> None:
        # The stored copy only spares a restarted process the wait: failing to write it
        # must not fail the fit, but it is logged.
        try:
            async with transaction(self.sessions) as session:
                await store.save_forecast_model(
                    session, key_text(key), reply.model_dump(mode="json"), reply.fitted_at
                )
        except SQLAlchemyError:
            log.warning("the forecast model %s could not be stored", key_text(key), exc_info=True)


def import_model_library() -> float:
    """Import the model's library ahead of the first request; seconds it took."""
    started = time.perf_counter()
    from statsmodels.tsa.holtwinters import ExponentialSmoothing  # noqa: F401

    return time.perf_counter() - started
