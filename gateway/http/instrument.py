"""HTTP metrics: the recorder the gateway's middleware times every request with, by route
template, and the sampler that copies the process's gauges (requests in flight, the pool,
the ping log) into the metrics.

The recorder binds each route's metrics the first time the route is seen, so a request
pays a dictionary look-up, two clock reads and a few integer additions (metrics.Tally and
metrics.Timing; their sums reach the metrics every second and before each scrape). Gauges
are sampled at the same moments rather than moved on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway import metrics
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.pingpath.pings import PINGS

SAMPLE_SECONDS = 1.0
UNMATCHED = "unmatched"

# Routes whose exact answer statuses are an outcome worth counting on their own.
OUTCOMES = {("POST", "/v1/redemptions"): metrics.REDEMPTIONS}


class _Flight:
    """Requests being handled by this process now."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


IN_FLIGHT = _Flight()


class _Route:
    """One route's metrics, bound once per process."""

    __slots__ = ("_by_class", "_by_status", "_labels", "_outcomes", "duration")

    def __init__(self, method: str, template: str) -> None:
        self._labels = (template, method)
        self.duration = metrics.Timing(metrics.HTTP_DURATION, template, method)
        self._by_class: list[metrics.Tally | None] = [None] * 6
        self._outcomes = OUTCOMES.get((method, template))
        self._by_status: dict[int, Any] = {}

    def answered(self, seconds: float, status: int) -> None:
        self.duration.observe(seconds)
        k = min(status // 100, 5)
        tally = self._by_class[k]
        if tally is None:
            child = metrics.HTTP_REQUESTS.labels(*self._labels, f"{k}xx")
            tally = self._by_class[k] = metrics.Tally(child)
        tally.n += 1
        if self._outcomes is not None:
            outcome = self._by_status.get(status)
            if outcome is None:
                outcome = self._by_status[status] = self._outcomes.labels(str(status))
            outcome.inc()


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


# Every app of the process shares them: a route's metrics are the process's.
_ROUTES: dict[tuple[str, str], _Route] = {}


class Recorder:
    """Times and counts the requests of one app; the gateway's middleware calls it.

    It binds each route's metrics the first time the route is seen.
    """

    __slots__ = ("_clock", "_flight", "_routes")

    def __init__(self) -> None:
        self._routes = _ROUTES
        self._flight = IN_FLIGHT
        self._clock = time.perf_counter

    def begin(self) -> float:
        self._flight.n += 1
        return self._clock()

    def end(self, request: web.Request, started: float, status: int) -> None:
        self._flight.n -= 1
        key = (request.method, _template(request))
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route(*key)
        route.answered(self._clock() - started, status)


def sample(app: web.Application) -> None:
    """Add up what the requests counted, and copy this process's gauges into the metrics."""
    metrics.flush()
    metrics.HTTP_IN_FLIGHT.set(IN_FLIGHT.n)
    pool = app.get(POOL)
    if pool is not None:
        size = pool.get_size()
        metrics.POOL_SIZE.set(size)
        metrics.POOL_IN_USE.set(size - pool.get_idle_size())
        metrics.POOL_MAX.set(pool.get_max_size())
    ping_log = app[PINGS].log
    metrics.SPOOL_BYTES.set(ping_log.spool_bytes)
    metrics.PING_LOG_PENDING.set(ping_log.pending)
    oldest = ping_log.oldest_pending_at
    age = 0.0 if oldest is None else (app[CLOCK].now() - oldest).total_seconds()
    metrics.SPOOL_AGE.set(max(0.0, age))


async def sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sample the gauges every second while the app runs (cleanup_ctx)."""

    async def loop() -> None:
        while True:
            sample(app)
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(loop(), name="metrics-sampler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        metrics.flush()  # the last second's counts too
