"""Per-partner rate limits: a steady rate with room for short bursts.

Two keepers of the same limit (GCRA, the token bucket written as one time per partner):
- `RateLimiter`, in this process: for SQLite, whose database one process serves;
- `SharedRateLimiter`, in PostgreSQL: every replica spends from the same allowance, so a
  partner's limit holds however many replicas stand behind the balancer.

A partner's state is its theoretical arrival time `tat`: each request allowed moves it one
interval (1/rate) on from max(tat, now); a request is allowed while `tat - now` stays within
the burst's room, (burst - 1) intervals. A partner idle long enough may send `burst` at once.
"""

import time
from collections.abc import Callable

from sqlalchemy import Float, case, delete, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_partner_share.partners.models import RateLimitState

STATE = RateLimitState.__table__  # type: ignore[attr-defined]
# The database's clock in seconds, the same for every expression of one statement.
_EPOCH_NOW = func.extract("epoch", literal_column("statement_timestamp()")).cast(Float)


def _interval_and_room(rate: float, burst: int) -> tuple[float, float]:
    interval = 1.0 / rate
    return interval, interval * (burst - 1)


class RateLimiter:
    """One allowance per partner, in this process (SQLite: one process per database)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        """Spend one request; None when allowed, else the seconds until one is."""
        now = self._clock()
        interval, room = _interval_and_room(rate, burst)
        tat = max(self._tat.get(key, now), now)
        if tat - room > now:
            return tat - room - now
        self._tat[key] = tat + interval
        return None

    async def forget(self, key: str) -> None:
        """Drop a partner's allowance (it was removed)."""
        self._tat.pop(key, None)


class SharedRateLimiter:
    """One allowance per partner in PostgreSQL, shared by every replica.

    An allowed request is one statement, in autocommit, on a small pool of its own
    (`engine`): a request waiting for it never holds one of the request pool's connections
    while another waits for it. Time is the database's clock, so replicas whose clocks
    differ still agree.
    """

    # A commit need not wait for the disk: a crash loses at most the last few moments of
    # allowances (a partner may get a few requests more), and each request saves a flush.
    SERVER_SETTINGS = {"synchronous_commit": "off"}

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        """Spend one request; None when allowed, else the seconds until one is."""
        interval, room = _interval_and_room(rate, burst)
        start = case((STATE.c.tat > _EPOCH_NOW, STATE.c.tat), else_=_EPOCH_NOW)
        statement = (
            insert(STATE)
            .values(partner_id=key, tat=_EPOCH_NOW + interval)
            .on_conflict_do_update(
                index_elements=[STATE.c.partner_id],
                set_={"tat": start + interval},
                where=STATE.c.tat - room <= _EPOCH_NOW,
            )
            .returning(STATE.c.tat)
        )
        async with self._engine.connect() as connection:
            if (await connection.execute(statement)).first() is not None:
                return None
            # Refused: how long until the allowance has room for one more.
            wait = (
                await connection.execute(
                    select(STATE.c.tat - room - _EPOCH_NOW).where(STATE.c.partner_id == key)
                )
            ).scalar_one()
        return max(float(wait), 0.001)

    async def forget(self, key: str) -> None:
        """Drop a partner's allowance (it was removed)."""
        async with self._engine.connect() as connection:
            await connection.execute(delete(STATE).where(STATE.c.partner_id == key))
