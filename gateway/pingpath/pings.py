"""The ping path: spoofing checks, index lookup, enter/dwell/exit, and the state write.

A ping that changes nothing costs no database round trip when the shopper's
state is cached here, and one indexed read when it is not. A state change is
one compare-and-set statement; if another request or replica got there first,
it is recomputed from the fresh state, so racing pings agree.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg
from aiohttp import web

from gateway import db, listen
from gateway.pingpath import offering, pinglog
from geo import fences, spoofing
from geo import store as geo_store
from geo.index import FenceIndex
from geo.models import FenceConfig, Fix, Observation, SpoofingConfig, Transition


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
    ) -> None:
        self.offers = offers
        self.fence_config = fence_config
        self.spoof_config = spoof_config
        self.log = log
        # The newest accepted fix per shopper seen by this process: the database
        # baseline lags by up to one ping log flush.
        self._recent: dict[int, Fix] = {}
        # Shoppers' visit state as last read. Any write (here or on another
        # replica, announced by NOTIFY) drops the entry, so a ping that changes
        # nothing usually costs no database round trip at all. A stale entry can
        # only make a ping look like a change, and changes are recomputed under
        # a row lock from the database's state.
        self._states: dict[int, geo_store.ShopperGeo] = {}
        self.origin = secrets.token_hex(6)

    def attach(self, listener: listen.Listener) -> None:
        listener.subscribe(geo_store.VISITS_CHANNEL, self._on_visits_changed)
        listener.on_lost(self._states.clear)

    def prime(self, shopper_id: int, row: asyncpg.Record) -> None:
        """Cache the state read together with the shopper's API key, unless one is cached."""
        if shopper_id not in self._states:
            self._keep(shopper_id, geo_store.shopper_geo_from_row(row))

    def _keep(self, shopper_id: int, state: geo_store.ShopperGeo) -> None:
        if len(self._states) >= 1_000_000:
            self._states.clear()
        self._states[shopper_id] = state

    def _on_visits_changed(self, payload: str) -> None:
        origin, _, shopper = payload.partition(":")
        if origin != self.origin and shopper.isdigit():
            self._states.pop(int(shopper), None)

    async def _state(self, pool: asyncpg.Pool, shopper_id: int) -> geo_store.ShopperGeo:
        cached = self._states.get(shopper_id)
        if cached is not None:
            return cached
        async with db.acquire(pool) as conn:
            state = await geo_store.get_shopper_geo(conn, shopper_id)
        self._keep(shopper_id, state)
        return state

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
        results = [PingResult(status="accepted") for _ in pings]
        order = sorted(range(len(pings)), key=lambda i: pings[i].ts) if len(pings) > 1 else (0,)
        state = await self._state(pool, shopper_id)
        baseline = state.last_fix
        cached = self._recent.get(shopper_id)
        if cached is not None and (baseline is None or cached.at > baseline.at):
            baseline = cached

        observations: list[tuple[int, Observation]] = []
        weather: dict[dt.datetime, tuple[str | None, float | None]] = {}
        for i in order:
            ping = pings[i]
            fix = Fix(lon=ping.lon, lat=ping.lat, at=ping.ts, accuracy_m=ping.accuracy_m)
            accurate = ping.accuracy_m <= self.fence_config.max_accuracy_m
            # The travel check only for pings accurate enough to count at all.
            verdict = spoofing.check(baseline if accurate else None, fix, now, self.spoof_config)
            if verdict in (spoofing.Verdict.FUTURE, spoofing.Verdict.TOO_OLD):
                results[i] = PingResult(status="rejected", reason=verdict.value)
                continue
            if not accurate:
                results[i] = PingResult(status="ignored", reason="poor_accuracy")
                continue
            if verdict is spoofing.Verdict.IMPOSSIBLE_TRAVEL:
                results[i] = PingResult(status="flagged", reason="impossible_travel")
                continue
            if baseline is None or fix.at >= baseline.at:
                baseline = fix
            reach = fences.reach_m(ping.accuracy_m, self.fence_config)
            near = index.match(ping.lon, ping.lat, reach, merchant_id)
            observations.append((i, Observation(at=ping.ts, accuracy_m=ping.accuracy_m, near=near)))
            weather[ping.ts] = (ping.weather_condition, ping.temp_c)

        transitions: list[Transition] = []
        sent: list[offering.Sent] = []
        # With no open visit and no fence in reach, the visits cannot change: the common
        # ping, away from every fence, skips the state machine.
        if observations and (state.visits or any(o.near for _, o in observations)):
            obs = [o for _, o in observations]
            try:
                transitions, sent = await self._apply(
                    pool,
                    index,
                    merchant_id=merchant_id,
                    shopper_id=shopper_id,
                    state=state,
                    observations=obs,
                    weather=weather,
                    now=now,
                )
            except BaseException:
                self._states.pop(shopper_id, None)
                raise
            if transitions:
                # Hand each transition to the ping whose time it carries.
                by_time: dict[dt.datetime, int] = {o.at: i for i, o in observations}
                for t in transitions:
                    owner = by_time.get(t.at)
                    if owner is not None:
                        results[owner].transitions.append(t)
        if observations and baseline is not None:
            self._remember(shopper_id, baseline)

        records = [
            geo_store.PingRecord(
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
            for ping, result in zip(pings, results, strict=True)
            if result.status != "rejected"
        ]
        # In sync mode this waits until the rows are committed: an answered ping is kept.
        await self.log.record(records)
        return Outcome(results=results, transitions=transitions, sent=sent)

    async def _apply(
        self,
        pool: asyncpg.Pool,
        index: FenceIndex,
        *,
        merchant_id: int,
        shopper_id: int,
        state: geo_store.ShopperGeo,
        observations: list[Observation],
        weather: dict[dt.datetime, tuple[str | None, float | None]],
        now: dt.datetime,
    ) -> tuple[list[Transition], list[offering.Sent]]:
        """Step the visits; write them by compare-and-set if that is needed.

        Losing the compare-and-set means another request or replica changed the
        visits first: recompute from the fresh state and try again. When the
        transitions trigger offers, the decisions commit with the visits, in one
        transaction, or not at all.
        """
        for _ in range(_CAS_ATTEMPTS):
            result = fences.step_batch(state.visits, observations, self.fence_config)
            if not (result.transitions or fences.needs_persisting(state.visits, result.states)):
                if result.changed:
                    # Only out counters moved: keep them in this process, write nothing.
                    self._cache(shopper_id, replace(state, visits=dict(result.states)))
                return [], []
            moments: list[offering.Moment] = []
            book = None
            if any(t.event != "exit" for t in result.transitions):
                book = await self.offers.book(pool, merchant_id)
                moments = self.offers.moments(book, index, result.transitions, weather, now)
            async with db.acquire(pool) as conn:
                sent: list[offering.Sent] = []
                tx = conn.transaction() if moments else None
                if tx is not None:
                    await tx.start()
                try:
                    version = await geo_store.cas_visits(
                        conn,
                        shopper_id=shopper_id,
                        merchant_id=merchant_id,
                        expected_version=state.version,
                        visits=result.states,
                        transitions=result.transitions,
                        origin=self.origin,
                    )
                    if version is not None and tx is not None and book is not None:
                        sent = await self.offers.commit(
                            conn,
                            book,
                            merchant_id=merchant_id,
                            shopper_id=shopper_id,
                            moments=moments,
                            now=now,
                        )
                except BaseException:
                    if tx is not None:
                        await tx.rollback()
                    raise
                if tx is not None:
                    if version is None:
                        await tx.rollback()
                    else:
                        await tx.commit()
                if version is not None:
                    self._cache(
                        shopper_id,
                        replace(state, visits=dict(result.states), version=version),
                    )
                    return list(result.transitions), sent
                state = await geo_store.get_shopper_geo(conn, shopper_id)
        return await self._apply_locked(
            pool,
            index,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            observations=observations,
            weather=weather,
            now=now,
        )

    async def _apply_locked(
        self,
        pool: asyncpg.Pool,
        index: FenceIndex,
        *,
        merchant_id: int,
        shopper_id: int,
        observations: list[Observation],
        weather: dict[dt.datetime, tuple[str | None, float | None]],
        now: dt.datetime,
    ) -> tuple[list[Transition], list[offering.Sent]]:
        """The same step under the shopper's row lock: slower, but it always progresses."""
        book = await self.offers.book(pool, merchant_id)
        sent: list[offering.Sent] = []
        async with db.acquire(pool) as conn, conn.transaction():
            state = await geo_store.lock_shopper_geo(conn, shopper_id, merchant_id)
            result = fences.step_batch(state.visits, observations, self.fence_config)
            if result.transitions or fences.needs_persisting(state.visits, result.states):
                await geo_store.save_visits(
                    conn,
                    shopper_id=shopper_id,
                    merchant_id=merchant_id,
                    visits=result.states,
                    transitions=result.transitions,
                    origin=self.origin,
                )
                state = replace(state, version=(state.version or 0) + 1)
                moments = self.offers.moments(book, index, result.transitions, weather, now)
                if moments:
                    sent = await self.offers.commit(
                        conn,
                        book,
                        merchant_id=merchant_id,
                        shopper_id=shopper_id,
                        moments=moments,
                        now=now,
                    )
        self._cache(shopper_id, replace(state, visits=dict(result.states)))
        return list(result.transitions), sent

    def _cache(self, shopper_id: int, state: geo_store.ShopperGeo) -> None:
        cached = self._states.get(shopper_id)
        # Concurrent requests finish in any order: never replace a newer state.
        if cached is None or (state.version or 0) >= (cached.version or 0):
            self._states[shopper_id] = state

    def _remember(self, shopper_id: int, fix: Fix) -> None:
        if len(self._recent) > 500_000:
            self._recent.clear()
        self._recent[shopper_id] = fix


PINGS = web.AppKey("pings", PingService)
