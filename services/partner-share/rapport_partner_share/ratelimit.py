"""Per-partner token buckets: a steady rate with room for short bursts."""

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One bucket per partner, in this process.

    With several replicas each holds its own buckets, so a partner's effective
    limit is the per-replica limit times the replicas behind the balancer.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, rate: float, burst: int) -> float | None:
        """Spend one token; None when allowed, else the seconds until a token is back."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(burst), updated=now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate

    def forget(self, key: str) -> None:
        """Drop a partner's bucket (its limits changed or it was removed)."""
        self._buckets.pop(key, None)
