"""The ping path: time window, spoofing checks, index lookup, enter/dwell/exit, decisions.

A request goes through it in this order: pings outside the accepted time window are
refused before anything else; the rest are screened (accuracy, plausible travel) and
matched against the fence index; then, if a visit may change, one unit of work steps
the visits, decides the offers the transitions trigger and records both. Pings are
logged in batches off the request path (see pinglog).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import asyncpg
from aiohttp import web

from gateway import db, listen, metrics
from gateway.pingpath import offering, pinglog, visits
from geo import fences, spoofing
from geo import store as geo_store
from geo.index import FenceIndex
from geo.models import (
    FenceConfig,
    FenceState,
    Fix,
    Observation,
    SpoofingConfig,
    StepResult,
    Transition,
)
from offers.models import Context


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    lat: float
    lon: float
    accuracy_m: float
    ts: dt.datetime
    speed_mps: float | None = None
    weather_condition: str | None = None
    temp_c: float | None = None


@dataclass(slots=True, kw_only=True)
class PingResult:
    # accepted: matched; flagged: recorded but implausible; ignored: too inaccurate;
    # rejected: not recorded (timestamp outside the accepted window).
    status: str
    reason: str | None = None
    transitions: list[Transition] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Outcome:
    results: list[PingResult]
    transitions: list[Transition]
    sent: list[offering.Sent] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class _Work:
    """What a request's unit of work needs: whose visits, and the pings that observe them.

    `owners[k]` is the index in `pings` of the ping `observations[k]` comes from, so
    each ping keeps its own answer, weather and decisions even when pings share a
    timestamp.
    """

    merchant_id: int
    shopper_id: int
    index: FenceIndex
    now: dt.datetime
    pings: Sequence[Ping]
    owners: Sequence[int]
    observations: Sequence[Observation]


_NO_STEP = StepResult(states={}, transitions=(), changed=False)

# Optimistic attempts before waiting for the shopper's row lock instead: a burst of
# one shopper's pings (two app instances, replicas) must all get through.
_CAS_ATTEMPTS = 3


class PingService:
    def __init__(
        self,
        *,
        fence_config: FenceConfig,
        spoof_config: SpoofingConfig,
        log: pinglog.PingLog,
        offers: offering.OfferBooks,
        visit_cache: visits.VisitCache | None = None,
    ) -> None:
        self.offers = offers
        self.fence_config = fence_config
        self.spoof_config = spoof_config
        self.log = log
        # The newest accepted fix per shopper seen by this process: the database
        # baseline lags by up to one ping log flush.
        self._recent: dict[int, Fix] = {}
        # Shoppers' visit state as last read or written; its sources and
        # invalidation rules are in gateway/pingpath/visits.py.
        self._states = visit_cache or visits.VisitCache()

    def attach(self, listener: listen.Listener) -> None:
        self._states.attach(listener)

    async def handle(
        self,
        pool: asyncpg.Pool,
        index: FenceIndex,
        *,
        merchant_id: int,
        shopper_id: int,
        pings: Sequence[Ping],
        now: dt.datetime,
    ) -> Outcome:
        results = [self._window(ping, now) for ping in pings]
        admitted = [i for i, r in enumerate(results) if r.status == "accepted"]
        step = _NO_STEP
        sent: list[offering.Sent] = []
        if admitted:
            admitted.sort(key=lambda i: pings[i].ts)
            state = await self._state(pool, shopper_id)
            work = self._observe(
                index, merchant_id, shopper_id, pings, admitted, results, state, now
            )
            # With no open visit and no fence in reach, the visits cannot change: the
            # common ping, away from every fence, skips the state machine.
            if state.visits or any(o.near for o in work.observations):
                try:
                    step, sent = await self._settle(pool, work, state)
                except BaseException:
                    self._states.drop(shopper_id)
                    raise
                for i, caused in zip(work.owners, step.by_observation, strict=True):
                    results[i].transitions = list(caused)
        records = [
            _record(ping, result, merchant_id=merchant_id, shopper_id=shopper_id, now=now)
            for ping, result in zip(pings, results, strict=True)
            if result.status != "rejected"
        ]
        # In sync mode this waits until the rows are committed: an answered ping is kept.
        await self.log.record(records)
        metrics.pings_counted([r.status for r in results], step.transitions)
        return Outcome(results=results, transitions=list(step.transitions), sent=sent)

    def _window(self, ping: Ping, now: dt.datetime) -> PingResult:
        """Refuse a ping outside the accepted time window before it goes any further."""
        verdict = spoofing.window(ping.ts, now, self.spoof_config)
        if verdict is spoofing.Verdict.OK:
            return PingResult(status="accepted")
        return PingResult(status="rejected", reason=verdict.value)

    async def _state(self, pool: asyncpg.Pool, shopper_id: int) -> geo_store.ShopperGeo:
        cached = self._states.get(shopper_id)
        if cached is not None:
            return cached
        async with db.acquire(pool) as conn:
            state = await geo_store.get_shopper_geo(conn, shopper_id)
        self._states.keep(shopper_id, state)
        return state

    def near(self, index: FenceIndex, merchant_id: int, ping: Ping) -> dict[int, float]:
        """The merchant's fences within the ping's reach, by id, with their distance (0 inside)."""
        reach = fences.reach_m(ping.accuracy_m, self.fence_config)
        return index.match(ping.lon, ping.lat, reach, merchant_id)

    def step(
        self,
        index: FenceIndex,
        visits: Mapping[int, FenceState],
        observations: Sequence[Observation],
    ) -> StepResult:
        """Step the visits through the observations; transitions carry their fence's store."""
        # The index says each fence's store once, here: transitions carry it from now on.
        stores = _Stores(index)
        return fences.step_batch(visits, observations, self.fence_config, stores=stores)

    def _observe(
        self,
        index: FenceIndex,
        merchant_id: int,
        shopper_id: int,
        pings: Sequence[Ping],
        order: Sequence[int],
        results: list[PingResult],
        state: geo_store.ShopperGeo,
        now: dt.datetime,
    ) -> _Work:
        """Screen the pings in `order` (accuracy, travel) and look up the fences near each.

        Marks the ignored and flagged ones in `results` and moves the travel baseline.
        """
        baseline = state.last_fix
        cached = self._recent.get(shopper_id)
        if cached is not None and (baseline is None or cached.at > baseline.at):
            baseline = cached
        owners: list[int] = []
        observations: list[Observation] = []
        for i in order:
            ping = pings[i]
            if not ping.accuracy_m <= self.fence_config.max_accuracy_m:
                results[i] = PingResult(status="ignored", reason="poor_accuracy")
                continue
            fix = Fix(lon=ping.lon, lat=ping.lat, at=ping.ts, accuracy_m=ping.accuracy_m)
            if spoofing.travel(baseline, fix, self.spoof_config) is not spoofing.Verdict.OK:
                results[i] = PingResult(status="flagged", reason="impossible_travel")
                continue
            if baseline is None or fix.at >= baseline.at:
                baseline = fix
            near = self.near(index, merchant_id, ping)
            owners.append(i)
            observations.append(Observation(at=ping.ts, accuracy_m=ping.accuracy_m, near=near))
        if observations and baseline is not None:
            self._remember(shopper_id, baseline)
        return _Work(
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            index=index,
            now=now,
            pings=pings,
            owners=owners,
            observations=observations,
        )

    async def _settle(
        self, pool: asyncpg.Pool, work: _Work, state: geo_store.ShopperGeo
    ) -> tuple[StepResult, list[offering.Sent]]:
        """Run the unit of work optimistically from `state`, then under the row lock.

        Losing the compare-and-set means another request or replica changed the visits
        first: step again from the fresh state. After a few lost races, wait for the
        shopper's row lock instead, which always progresses.
        """
        for _ in range(_CAS_ATTEMPTS):
            done = await self._unit_of_work(pool, work, state)
            if done is not None:
                return done
            async with db.acquire(pool) as conn:
                state = await geo_store.get_shopper_geo(conn, work.shopper_id)
        done = await self._unit_of_work(pool, work, None)
        assert done is not None  # under the lock nobody else can win
        return done

    async def _unit_of_work(
        self, pool: asyncpg.Pool, work: _Work, state: geo_store.ShopperGeo | None
    ) -> tuple[StepResult, list[offering.Sent]] | None:
        """Step the visits, decide the offers their transitions trigger, record both.

        The visits and the decisions commit in one transaction, or not at all. From
        `state`, the visits are written by compare-and-set: None when another request
        got there first (nothing is written). With `state` None, the state is read
        under the shopper's row lock, and the unit always completes.
        """
        locked = state is None
        # The book is loaded before a connection is taken: loading it may need one too.
        book = await self.offers.book(pool, work.merchant_id) if locked else None
        moments: list[offering.Moment] = []
        if state is not None:
            step = self._step(state, work)
            if not self._needs_write(state, step, work.shopper_id):
                return step, []
            if any(t.event != "exit" for t in step.transitions):
                book = await self.offers.book(pool, work.merchant_id)
                moments = self._moments(book, step, work)
        sent: list[offering.Sent] = []
        async with db.acquire(pool) as conn, _transaction(conn, locked or bool(moments)):
            if state is None:
                state = await geo_store.lock_shopper_geo(conn, work.shopper_id, work.merchant_id)
                step = self._step(state, work)
                if not self._needs_write(state, step, work.shopper_id):
                    return step, []
                assert book is not None
                moments = self._moments(book, step, work)
            version = await self._write(conn, work, state, step, locked=locked)
            if version is None:
                return None
            if moments and book is not None:
                sent = await self.offers.commit(
                    conn,
                    book,
                    merchant_id=work.merchant_id,
                    shopper_id=work.shopper_id,
                    moments=moments,
                    now=work.now,
                )
        self._states.keep(
            work.shopper_id, replace(state, visits=dict(step.states), version=version)
        )
        return step, sent

    def _step(self, state: geo_store.ShopperGeo, work: _Work) -> StepResult:
        return self.step(work.index, state.visits, work.observations)

    def _needs_write(self, state: geo_store.ShopperGeo, step: StepResult, shopper_id: int) -> bool:
        """Whether the step changes the database; if not, this process keeps what it knows.

        Out counters that moved are kept here only; a state read under the lock is
        kept so the next ping starts from it.
        """
        if step.transitions or fences.needs_persisting(state.visits, step.states):
            return True
        self._states.keep(
            shopper_id, replace(state, visits=dict(step.states)) if step.changed else state
        )
        return False

    def _moments(self, book: offering.Book, step: StepResult, work: _Work) -> list[offering.Moment]:
        contexts = [context(work.pings[i], work.now) for i in work.owners]
        caused = zip(contexts, step.by_observation, strict=True)
        return self.offers.moments(book, list(caused), work.now)

    async def _write(
        self,
        conn: asyncpg.Connection,
        work: _Work,
        state: geo_store.ShopperGeo,
        step: StepResult,
        *,
        locked: bool,
    ) -> int | None:
        """Write the stepped visits; the new version, or None if `state` was stale."""
        if not locked:
            return await geo_store.cas_visits(
                conn,
                shopper_id=work.shopper_id,
                merchant_id=work.merchant_id,
                expected_version=state.version,
                visits=step.states,
                transitions=step.transitions,
                origin=self._states.origin,
            )
        await geo_store.save_visits(
            conn,
            shopper_id=work.shopper_id,
            merchant_id=work.merchant_id,
            visits=step.states,
            transitions=step.transitions,
            origin=self._states.origin,
        )
        return (state.version or 0) + 1

    def _remember(self, shopper_id: int, fix: Fix) -> None:
        if len(self._recent) > 500_000:
            self._recent.clear()
        self._recent[shopper_id] = fix


class _Stores(Mapping[int, int]):
    """Each fence's store in an index snapshot, looked up only for the transitions."""

    __slots__ = ("_index",)

    def __init__(self, index: FenceIndex) -> None:
        self._index = index

    def __getitem__(self, fence_id: int) -> int:
        fence = self._index.get(fence_id)
        if fence is None:
            raise KeyError(fence_id)
        return fence.store_id

    def __iter__(self) -> Iterator[int]:
        return (f.id for f in self._index.fences())

    def __len__(self) -> int:
        return len(self._index)


def context(ping: Ping, now: dt.datetime) -> Context:
    """What a decision sees of the ping: the moment it is decided at, and its weather."""
    return Context(now=now, weather_condition=ping.weather_condition, temp_c=ping.temp_c)


def _transaction(
    conn: asyncpg.Connection, wanted: bool
) -> contextlib.AbstractAsyncContextManager[object]:
    # A lone compare-and-set is atomic by itself: skip BEGIN/COMMIT on the hot path.
    return conn.transaction() if wanted else contextlib.nullcontext()


def _record(
    ping: Ping, result: PingResult, *, merchant_id: int, shopper_id: int, now: dt.datetime
) -> geo_store.PingRecord:
    return geo_store.PingRecord(
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        ts=ping.ts,
        received_at=now,
        lat=ping.lat,
        lon=ping.lon,
        accuracy_m=ping.accuracy_m,
        speed_mps=ping.speed_mps,
        weather_condition=ping.weather_condition,
        temp_c=ping.temp_c,
        verdict="ok" if result.status == "accepted" else str(result.reason),
        transitions=len(result.transitions),
    )


PINGS = web.AppKey("pings", PingService)
