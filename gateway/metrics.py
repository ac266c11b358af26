"""The Prometheus metrics every gateway process keeps, declared once, and their exposition.

Names start with ``gateway_``, use base units, and carry only low-cardinality labels: a
route template, a method, a status class, a reason code, a channel, a job name, never an
id. Children are bound once, so no request looks a label up. On the hottest paths (every
request, every ping) a :class:`Tally` or :class:`Timing` keeps plain numbers that
:func:`flush` adds to their metric every second and before each scrape: a request pays
an integer addition instead of a locked update.

With several ``gateway serve`` workers, prometheus-client's multiprocess mode is used:
``PROMETHEUS_MULTIPROC_DIR`` names a directory each worker writes its values to (set by
``gateway serve`` before it starts them, see gateway/cli/serve.py), and any worker's
``/metrics`` adds them all up. Gauges say how: ``livesum`` adds the live workers' values,
``livemax`` and ``livemin`` take the extreme one, ``max`` keeps a dead worker's too.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)

Aggregate = Literal["livesum", "livemax", "livemin", "max", "min"]


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, how: Aggregate, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY, multiprocess_mode=how)


def _histogram(
    name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
) -> Histogram:
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=buckets)


class Tally:
    """A counter child's increments, kept as an int until the next flush."""

    __slots__ = ("_child", "n")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.n = 0
        _PENDING.append(self)

    def flush(self) -> None:
        n, self.n = self.n, 0
        if n:
            self._child.inc(n)


class Timing:
    """A histogram child's observations, kept as bucket counts and a sum until the flush.

    The flush adds them to the child's buckets and sum: what ``observe()`` would have
    written, one locked update per bucket that moved instead of two per observation.
    """

    __slots__ = ("_bounds", "_child", "counts", "total")

    def __init__(self, histogram: Histogram, *labels: str) -> None:
        self._child = histogram.labels(*labels) if labels else histogram
        self._bounds = list(self._child._upper_bounds)
        self.counts = [0] * len(self._bounds)
        self.total = 0.0
        _PENDING.append(self)

    def observe(self, value: float) -> None:
        # The first bucket whose upper bound is >= value, as Histogram.observe picks it.
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        counts, total = self.counts, self.total
        if not any(counts):
            return
        self.counts, self.total = [0] * len(counts), 0.0
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
        self._child._sum.inc(total)


_PENDING: list[Tally | Timing] = []


def flush() -> None:
    """Add what the tallies and timings kept since the last flush to their metrics."""
    for pending in _PENDING:
        pending.flush()


# --- HTTP (recorded by gateway/http/instrument.py) ------------------------------------------

HTTP_DURATION = _histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival at the gateway's middleware to its answer, by route template",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    ("route", "method"),
)
HTTP_REQUESTS = _counter(
    "gateway_http_requests",
    "Requests answered, by route template, method and status class (2xx, 4xx...)",
    ("route", "method", "status"),
)
HTTP_IN_FLIGHT = _gauge(
    "gateway_http_requests_in_flight",
    "Requests being handled now (sampled every second and at each scrape)",
    "livesum",
)

# --- pings -----------------------------------------------------------------------------------

PING_STATUSES = ("accepted", "ignored", "flagged", "rejected")
_pings = _counter(
    "gateway_pings",
    "Pings received, by the status answered (accepted, ignored, flagged, rejected)",
    ("status",),
)
PINGS = {s: Tally(_pings.labels(s)) for s in PING_STATUSES}
_transitions = _counter(
    "gateway_fence_transitions", "Geofence transitions, by event (enter, dwell, exit)", ("event",)
)
TRANSITIONS = {e: _transitions.labels(e) for e in ("enter", "dwell", "exit")}
PING_BATCH_SIZE = _histogram(
    "gateway_ping_batch_size",
    "Pings per POST /v1/pings/batch request",
    (1, 2, 5, 10, 25, 50, 100, 250, 500),
)
SPOOL_BYTES = _gauge(
    "gateway_ping_spool_bytes", "Size of the ping spool files being written", "livesum"
)
SPOOL_AGE = _gauge(
    "gateway_ping_spool_age_seconds",
    "Age of the oldest answered ping not yet written to the database (0: none waiting)",
    "livemax",
)
PING_LOG_PENDING = _gauge(
    "gateway_ping_log_pending", "Answered pings not yet written to the database", "livesum"
)

# --- the geofence index ----------------------------------------------------------------------

INDEX_FENCES = _gauge("gateway_index_fences", "Geofences in the process's index", "livemax")
INDEX_REBUILD = _histogram(
    "gateway_index_rebuild_duration_seconds",
    "Time to load the geofences and build a new index snapshot",
    (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INDEX_BUILT_AT = _gauge(
    "gateway_index_last_rebuild_timestamp_seconds",
    "When the index was last rebuilt (the stalest process's), Unix time",
    "livemin",
)
INDEX_VERSION = _gauge(
    "gateway_index_version",
    "The geofence change counter the index was built at (the stalest process's)",
    "livemin",
)

# --- offers ----------------------------------------------------------------------------------

_decisions = _counter(
    "gateway_offer_decisions",
    "Offer decisions, by reason code (sent, or why not: budget_exhausted, quiet_hours...)",
    ("reason",),
)
_sends = _counter(
    "gateway_offer_sends", "Coupons sent, by channel (inbox, webpush, wallet)", ("channel",)
)
REDEMPTIONS = _counter(
    "gateway_redemptions",
    "Redemption attempts at the till, by HTTP status (201, 200 replayed, 404, 409, 410...)",
    ("status",),
)

# --- delivery --------------------------------------------------------------------------------

_webpush = _counter(
    "gateway_webpush_attempts",
    "Web Push messages posted to push services, by answer class",
    ("result",),
)
WEBPUSH_RESULTS = (
    "accepted",  # 2xx
    "gone",  # 404, 410: the subscription was pruned
    "rate_limited",  # 429
    "server_error",  # 5xx
    "no_answer",  # timeout, connection refused or reset
    "refused",  # another 4xx: our request was wrong
    "unusable",  # payload too large, or subscription keys that cannot work
)
WEBPUSH = {r: _webpush.labels(r) for r in WEBPUSH_RESULTS}
DEAD_LETTERS = _counter(
    "gateway_outbox_dead_letters", "Deliveries that gave up and were dead-lettered"
)
DELIVERY_LATENCY = _histogram(
    "gateway_delivery_latency_seconds",
    "Time from the decision to the push service's acceptance of the first Web Push message",
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
_wallet_updates = _counter(
    "gateway_wallet_updates",
    "Wallet pass updates: APNs pushes (wallet=apple, per device) and Google object updates "
    "(wallet=google, per queued update), by result",
    ("wallet", "result"),
)
WALLET_UPDATES = {
    ("apple", r): _wallet_updates.labels("apple", r) for r in ("ok", "gone", "retry", "refused")
} | {("google", r): _wallet_updates.labels("google", r) for r in ("ok", "retry", "dead", "skipped")}

# --- the database ----------------------------------------------------------------------------

POOL_SIZE = _gauge("gateway_db_pool_connections", "Connections open in the pools", "livesum")
POOL_IN_USE = _gauge(
    "gateway_db_pool_connections_in_use", "Pool connections lent out now", "livesum"
)
POOL_MAX = _gauge(
    "gateway_db_pool_connections_max", "Most connections the pools may open", "livesum"
)
DB_UNAVAILABLE = _counter(
    "gateway_db_unavailable_errors",
    "Requests answered 503 because the database was unreachable",
)

# --- periodic jobs ---------------------------------------------------------------------------

JOB_OUTCOMES = ("ok", "failed", "skipped")
_job_runs = _counter(
    "gateway_job_runs",
    "Rounds of the periodic jobs, by outcome (skipped: another process held its lock)",
    ("job", "outcome"),
)
_job_last = _gauge(
    "gateway_job_last_run_timestamp_seconds",
    "When a job's round last ended with this outcome, Unix time",
    "max",
    ("job", "outcome"),
)
_partitioned_until = _gauge(
    "gateway_partitions_until_timestamp_seconds",
    "How far ahead an event table has its time partitions without a gap, Unix time; rows "
    "past it go to the table's DEFAULT partition (set by the partitions job)",
    "max",
    ("table",),
)


# --- the one-line calls the instrumented code makes -----------------------------------------

# False in a `gateway serve` process run with GATEWAY_METRICS=0: the ping path then
# records nothing either (and `gateway bench` compares against that).
recording = True


def switch_off() -> None:
    global recording
    recording = False


def pings_counted(statuses: Iterable[str], transitions: Iterable[Any]) -> None:
    """A request's pings, by the status each got, and the transitions they caused."""
    if not recording:
        return
    for status in statuses:
        PINGS[status].n += 1
    for t in transitions:
        TRANSITIONS[t.event].inc()


# Bound on first use (offers' reason codes and channels are not this layer's to import).
_DECISIONS: dict[str, Any] = {}
_SENDS: dict[str, Any] = {}


def decided(reasons: Iterable[str | None], channels: Iterable[str]) -> None:
    """Decisions written (reason None: sent), and the channels of the coupon sent."""
    if not recording:
        return
    for reason in reasons:
        key = reason or "sent"
        (_DECISIONS.get(key) or _DECISIONS.setdefault(key, _decisions.labels(key))).inc()
    for channel in channels:
        (_SENDS.get(channel) or _SENDS.setdefault(channel, _sends.labels(channel))).inc()


def batch_received(size: int) -> None:
    if recording:
        PING_BATCH_SIZE.observe(size)


def index_rebuilt(fences: int, version: int, seconds: float, at: float) -> None:
    INDEX_FENCES.set(fences)
    INDEX_VERSION.set(version)
    INDEX_BUILT_AT.set(at)
    INDEX_REBUILD.observe(seconds)


def job_ran(job: str, outcome: str, at: float) -> None:
    _job_runs.labels(job, outcome).inc()
    _job_last.labels(job, outcome).set(at)


def partitioned_until(table: str, at: float) -> None:
    _partitioned_until.labels(table).set(at)


def apns_pushed(outcomes: Iterable[Any]) -> None:
    """APNs' answers to one pass update's pushes (wallet.apns.Outcome), one per device."""
    for o in outcomes:
        if o.status == 200:
            result = "ok"
        elif o.drop_registration:
            result = "gone"
        else:
            result = "retry" if o.retry else "refused"
        WALLET_UPDATES["apple", result].inc()


def webpush_result(status: int | None) -> str:
    """The answer class of one Web Push post: its status, or None when it raised."""
    if status is None or status == 0:
        return "no_answer"
    if 200 <= status < 300:
        return "accepted"
    if status in (404, 410):
        return "gone"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "refused"


# --- exposition ------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The multiprocess mode's directory, when this process runs in that mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(extra: CollectorRegistry | None = None) -> bytes:
    """Every metric in the Prometheus text format: this process's, or, in multiprocess
    mode, all workers' added up; then `extra`'s (figures read from the database)."""
    directory = multiprocess_dir()
    if directory is None:
        out = generate_latest(REGISTRY)
    else:
        workers = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(workers, path=directory)
        out = generate_latest(workers)
    return out + generate_latest(extra) if extra is not None else out


def reset_multiprocess_dir(directory: str, *, keep: int) -> None:
    """Empty the directory at start: values a previous run left must not be added in.

    The files of process `keep` (this one, which may have opened its own already) stay.
    """
    for entry in os.scandir(directory):
        if entry.name.endswith(".db") and not entry.name.endswith(f"_{keep}.db"):
            os.unlink(entry.path)


def worker_gone(pid: int, directory: str) -> None:
    """A worker exited: its live gauges stop counting (its counters still do)."""
    multiprocess.mark_process_dead(pid, directory)
