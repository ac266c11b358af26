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
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import asyncpg
import numpy as np
from aiohttp import web

from gateway import db, listen, metrics
from gateway.pingpath import answers, offering, pinglog, visits
from geo import errors as geo_errors
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
    # The app's own id of the fix: a resend with it is answered from the first attempt.
    id: uuid.UUID | None = None


PingLike = answers.PingLike


@dataclass(slots=True, kw_only=True)
class PingResult:
    # accepted: matched; flagged: recorded but implausible; ignored: too inaccurate;
    # rejected: not recorded (timestamp outside the accepted window).
    status: str
    reason: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    # A resent ping's answer, as its first attempt got it (see `answer`).
    replay: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class Outcome:
    results: list[PingResult]
    transitions: list[Transition]
    sent: list[offering.Sent] = field(default_factory=list)
    # The decided moments, each with its ping and what it sent.
    moments: list[offering.Moment] = field(default_factory=list)


class _Request(NamedTuple):
    merchant_id: int
    shopper_id: int
    pings: Sequence[PingLike]
    now: dt.datetime
    # Whether some pings carry a client id, whose answers are then recorded.
    receipts: bool = False


@dataclass(slots=True, kw_only=True)
class _Work:
    """What a request's unit of work needs: whose visits, and the pings that observe them.

    `owners[k]` is the index in `request.pings` of the ping whose fences in reach are
    `near[k]` (and, once built, whose observation is `observations[k]`), so each ping
    keeps its own answer, weather and decisions even when pings share a timestamp.
    """

    request: _Request
    index: FenceIndex
    owners: Sequence[int]
    near: Sequence[Mapping[int, float]]
    results: list[PingResult]
    observations: Sequence[Observation] = ()
    # Set once the answers of the pings with a client id are recorded.
    receipted: bool = False

    @property
    def merchant_id(self) -> int:
        return self.request.merchant_id

    @property
    def shopper_id(self) -> int:
        return self.request.shopper_id

    @property
    def pings(self) -> Sequence[PingLike]:
        return self.request.pings

    @property
    def now(self) -> dt.datetime:
        return self.request.now


_Observer = Callable[
    [FenceIndex, _Request, Sequence[int], list[PingResult], geo_store.ShopperGeo], _Work
]

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
        pings: Sequence[PingLike],
        now: dt.datetime,
        batched: bool = False,
    ) -> Outcome:
        """The pings' answers: each checked and matched on its own, or `batched`.

        Batched, the time window, the travel checks and the matching
        (`FenceIndex.match_many`) each run over all the pings at once, for the same
        answers ping for ping; the visits are stepped once either way. A ping whose
        client id the shopper already used is not processed again: it gets the answer
        its first attempt got (`PingResult.replay`).
        """
        request = _Request(merchant_id, shopper_id, pings, now)
        if all(p.id is None for p in pings):
            return await self._screen(pool, index, request, batched)
        for _ in range(_CAS_ATTEMPTS - 1):
            with contextlib.suppress(geo_errors.DuplicatePing):
                return await self._once(pool, index, request, batched)
        return await self._once(pool, index, request, batched)

    async def _once(
        self, pool: asyncpg.Pool, index: FenceIndex, request: _Request, batched: bool
    ) -> Outcome:
        """Answer resent pings from their records, and process the others only."""
        pings = request.pings
        async with db.acquire(pool) as conn:
            seen = await geo_store.seen_pings(
                conn, request.shopper_id, [p.id for p in pings if p.id is not None]
            )
        fresh: list[int] = []
        first: dict[uuid.UUID, int] = {}
        for i, p in enumerate(pings):
            if p.id is None or (p.id not in seen and p.id not in first):
                fresh.append(i)
                if p.id is not None:
                    first[p.id] = i
        sub = request._replace(pings=[pings[i] for i in fresh], receipts=True)
        try:
            done = await self._screen(pool, index, sub, batched)
        except geo_errors.DuplicatePing:
            self._states.drop(request.shopper_id)
            raise
        results: list[PingResult | None] = [None] * len(pings)
        for i, result in zip(fresh, done.results, strict=True):
            results[i] = result
        given = dict(seen)
        given.update(answers.of(sub.pings, done.results, done.moments))
        for i, p in enumerate(pings):
            if results[i] is None and p.id is not None:
                replay = given[p.id]
                results[i] = PingResult(
                    status=replay["status"], reason=replay["reason"], replay=replay
                )
        done.results = [r for r in results if r is not None]
        return done

    async def _screen(
        self, pool: asyncpg.Pool, index: FenceIndex, request: _Request, batched: bool
    ) -> Outcome:
        if not batched:
            results = [self._window(ping, request.now) for ping in request.pings]
            return await self._process(pool, index, request, results, self._observe)
        verdicts = spoofing.window_many(
            [p.ts for p in request.pings], request.now, self.spoof_config
        )
        results = [
            PingResult(status="accepted")
            if v is spoofing.Verdict.OK
            else PingResult(status="rejected", reason=v.value)
            for v in verdicts
        ]
        return await self._process(pool, index, request, results, self._observe_batch)

    async def _process(
        self,
        pool: asyncpg.Pool,
        index: FenceIndex,
        request: _Request,
        results: list[PingResult],
        observe: _Observer,
    ) -> Outcome:
        """Screen and match the admitted pings, step the visits, log every recorded ping."""
        pings, shopper_id = request.pings, request.shopper_id
        admitted = [i for i, r in enumerate(results) if r.status == "accepted"]
        step = _NO_STEP
        sent: list[offering.Sent] = []
        moments: list[offering.Moment] = []
        receipted = False
        if admitted:
            admitted.sort(key=lambda i: pings[i].ts)
            state = await self._state(pool, shopper_id)
            work = observe(index, request, admitted, results, state)
            # With no open visit and no fence in reach, the visits cannot change: the
            # common ping, away from every fence, skips the state machine.
            if state.visits or any(work.near):
                work.observations = [
                    Observation(at=pings[i].ts, accuracy_m=pings[i].accuracy_m, near=near)
                    for i, near in zip(work.owners, work.near, strict=True)
                ]
                try:
                    step, moments = await self._settle(pool, work, state)
                except BaseException:
                    self._states.drop(shopper_id)
                    raise
                sent = [s for m in moments for s in m.sent]
                receipted = work.receipted
                for i, caused in zip(work.owners, step.by_observation, strict=True):
                    results[i].transitions = list(caused)
        if request.receipts and not receipted:
            # No unit of work wrote anything: the answers and log rows go on their own,
            # still before the answer, so a resend finds them on any replica.
            async with db.acquire(pool) as conn, conn.transaction():
                await geo_store.share_ping_log(conn)
                await answers.record(conn, request, results, moments)
        if not request.receipts:  # receipted pings were logged with their receipts
            # In sync mode this waits until the rows are committed: an answered ping is kept.
            await self.log.record(answers.log_rows(request, results))
        metrics.pings_counted([r.status for r in results], step.transitions)
        return Outcome(
            results=results, transitions=list(step.transitions), sent=sent, moments=moments
        )

    def _window(self, ping: PingLike, now: dt.datetime) -> PingResult:
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

    def near(self, index: FenceIndex, merchant_id: int, ping: PingLike) -> dict[int, float]:
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
        request: _Request,
        order: Sequence[int],
        results: list[PingResult],
        state: geo_store.ShopperGeo,
    ) -> _Work:
        """Screen the pings in `order` (accuracy, travel) and look up the fences near each.

        Marks the ignored and flagged ones in `results` and moves the travel baseline.
        """
        pings = request.pings
        baseline = self._baseline(request.shopper_id, state)
        owners: list[int] = []
        near: list[dict[int, float]] = []
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
            owners.append(i)
            near.append(self.near(index, request.merchant_id, ping))
        if owners and baseline is not None:
            self._remember(request.shopper_id, baseline)
        return _Work(request=request, index=index, owners=owners, near=near, results=results)

    def _observe_batch(
        self,
        index: FenceIndex,
        request: _Request,
        order: Sequence[int],
        results: list[PingResult],
        state: geo_store.ShopperGeo,
    ) -> _Work:
        """`_observe` over the whole batch: one travel check and one index lookup for all."""
        pings = request.pings
        precise: list[int] = []
        for i in order:
            if pings[i].accuracy_m <= self.fence_config.max_accuracy_m:
                precise.append(i)
            else:
                results[i] = PingResult(status="ignored", reason="poor_accuracy")
        n = len(precise)
        lon = np.fromiter((pings[i].lon for i in precise), np.float64, n)
        lat = np.fromiter((pings[i].lat for i in precise), np.float64, n)
        accuracy = np.fromiter((pings[i].accuracy_m for i in precise), np.float64, n)
        plausible, baseline = spoofing.travel_many(
            self._baseline(request.shopper_id, state),
            lon,
            lat,
            [pings[i].ts for i in precise],
            accuracy,
            self.spoof_config,
        )
        owners: list[int] = []
        for i, ok in zip(precise, plausible, strict=True):
            if ok:
                owners.append(i)
            else:
                results[i] = PingResult(status="flagged", reason="impossible_travel")
        near: list[dict[int, float]] = []
        if owners:
            if baseline is not None:
                self._remember(request.shopper_id, baseline)
            kept = np.asarray(plausible) if len(owners) < n else slice(None)
            near = index.match_many(
                lon[kept],
                lat[kept],
                fences.reach_m_array(accuracy[kept], self.fence_config),
                request.merchant_id,
            ).to_dicts()
        return _Work(request=request, index=index, owners=owners, near=near, results=results)

    def _baseline(self, shopper_id: int, state: geo_store.ShopperGeo) -> Fix | None:
        """The newest accepted fix: the database's, or a newer one this process has seen."""
        baseline = state.last_fix
        cached = self._recent.get(shopper_id)
        if cached is not None and (baseline is None or cached.at > baseline.at):
            baseline = cached
        return baseline

    async def _settle(
        self, pool: asyncpg.Pool, work: _Work, state: geo_store.ShopperGeo
    ) -> tuple[StepResult, list[offering.Moment]]:
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
    ) -> tuple[StepResult, list[offering.Moment]] | None:
        """Step the visits, decide the offers their transitions trigger, record both.

        The visits and the decisions (and the answers of pings with a client id) commit
        in one transaction, or not at all. From
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
        wanted = locked or bool(moments) or work.request.receipts
        async with db.acquire(pool) as conn, _transaction(conn, wanted):
            if work.request.receipts:  # answers.record logs the pings in this transaction
                await geo_store.share_ping_log(conn)
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
                await self.offers.commit(
                    conn,
                    book,
                    merchant_id=work.merchant_id,
                    shopper_id=work.shopper_id,
                    moments=moments,
                    now=work.now,
                )
            if work.request.receipts:
                for i, caused in zip(work.owners, step.by_observation, strict=True):
                    work.results[i].transitions = list(caused)
                await answers.record(conn, work.request, work.results, moments)
                work.receipted = True
        self._states.keep(
            work.shopper_id, replace(state, visits=dict(step.states), version=version)
        )
        return step, moments

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
        return self.offers.moments(book, list(caused), work.now, owners=work.owners)

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


def context(ping: PingLike, now: dt.datetime) -> Context:
    """What a decision sees of the ping: the moment it is decided at, and its weather."""
    return Context(now=now, weather_condition=ping.weather_condition, temp_c=ping.temp_c)


def _transaction(
    conn: asyncpg.Connection, wanted: bool
) -> contextlib.AbstractAsyncContextManager[object]:
    # A lone compare-and-set is atomic by itself: skip BEGIN/COMMIT on the hot path.
    return conn.transaction() if wanted else contextlib.nullcontext()


PINGS = web.AppKey("pings", PingService)
