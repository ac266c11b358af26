"""Per-key token buckets, kept in process memory.

Each replica limits on its own, so behind a load balancer that spreads one
shopper over N replicas the effective limit is up to N times the setting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    def __init__(self, *, rate: float, burst: int, max_keys: int = 200_000) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: dict[int, _Bucket] = {}

    def take(self, key: int, cost: float = 1.0, now: float | None = None) -> float:
        """Spend ``cost`` tokens; returns 0 when allowed, else seconds until it would be."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), stamp=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def retry_after(self, wait: float) -> str:
        return str(max(1, math.ceil(wait)))

    def _evict(self, now: float) -> None:
        # Buckets that have refilled completely carry no information.
        full = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < full}
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()


PING_LIMITER = web.AppKey("ping_limiter", TokenBuckets)
REDEEM_LIMITER = web.AppKey("redeem_limiter", TokenBuckets)
