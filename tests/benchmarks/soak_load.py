"""The soak's load: the demo city's shops, offers and shoppers, driven through nginx.

Shoppers walk from 600 m away into a shop's geofence and out again, ping with the rain
that the demo's "Rainy day" offer wants, redeem about half of their coupons at the till
(some twice, as a cashier scanning again), and retire after a few visits, when their daily
caps are used up; a newly enrolled shopper takes each one's place, so decisions keep coming
for the whole run. Every request is retried on a lost answer, a 502 or a 503, as an app or a
till would: pings with their client id, redemptions with their Idempotency-Key. What was
answered is recorded for the reconciliation (soak_check.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import math
import random
import time
import uuid
from typing import Any

import aiohttp
import orjson

from gateway import db
from gateway.demo import city, localpush
from gateway.demo.simulation import Demo, Options

RETRYABLE = (0, 502, 503, 504)
VISITS = 3  # store visits a shopper makes before retiring (most caps are used up by then)
GOLD_SHARE = 0.15  # enrolled with enough points for the Gold and Regulars offers
RETRY_FOR_SECONDS = 120.0  # a request still failing after this is counted as failed


@dataclasses.dataclass(slots=True)
class Shopper:
    id: int
    token: str
    store: int = 0
    step: int = 0  # 0: away, 1: at the shop (enters), 2: still at the shop
    visits: int = 0
    busy: bool = False
    pos: tuple[float, float] = (0.0, 0.0)


@dataclasses.dataclass(slots=True)
class Ping:
    """One ping as the load saw it; latency counts from its scheduled time."""

    scheduled: float  # monotonic
    latency: float = math.nan  # seconds to its 200 answer, retries included
    attempts: int = 0
    failed: int = 0  # attempts that got no 200


@dataclasses.dataclass(slots=True)
class Record:
    """What the gateway answered, to be found in the database afterwards."""

    pings: list[Ping] = dataclasses.field(default_factory=list)
    answered: set[tuple[int, dt.datetime]] = dataclasses.field(default_factory=set)
    # ... of which an attempt was cut off (no answer, or nginx's 502: a replica died on it)
    cut: set[tuple[int, dt.datetime]] = dataclasses.field(default_factory=set)
    unanswered: int = 0  # pings given up after RETRY_FOR_SECONDS
    skipped: int = 0  # scheduled when every shopper picked was waiting for an answer
    deliveries: set[str] = dataclasses.field(default_factory=set)
    coupons: dict[str, str] = dataclasses.field(default_factory=dict)  # code -> store
    redeemed: set[str] = dataclasses.field(default_factory=set)
    second_scans_refused: int = 0
    second_scans_accepted: int = 0  # a coupon redeemed twice: must stay 0
    redemption_failures: int = 0
    enrolled: int = 0
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    errors_at: list[float] = dataclasses.field(default_factory=list)  # monotonic, any request


class City:
    """The demo's shops, fences and offers, made through the API of the cluster."""

    def __init__(self, demo: Demo, vapid_key: str) -> None:
        self.demo = demo
        self.stores = demo.stores
        self.tokens = demo.tokens
        self.vapid_key = vapid_key

    @classmethod
    async def build(cls, http: aiohttp.ClientSession, base: str, url: str, seed: int) -> City:
        demo = Demo(Options(seed=seed, shoppers=0), database_url=url, progress=None)
        demo.http, demo.base = http, base
        pool = await db.create_pool(url, min_size=1, max_size=2)
        try:
            await demo.build_city(pool)
        finally:
            await pool.close()
        manager = demo.tokens["manager"]
        # Offers all day, whenever the soak runs: no quiet hours, shops always open.
        await demo.call("PUT", "/v1/program", manager, {"daily_offer_cap": 3, "quiet_hours": None})
        always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        for s in demo.stores:
            await demo.call("PATCH", f"/v1/stores/{s.id}", manager, {"opening_hours": always})
        _, key = await demo.call("GET", "/v1/push/vapid-public-key", demo.tokens["app"])
        return cls(demo, key["public_key"])


class Driver:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        town: City,
        push: localpush.PushService,
        *,
        seed: int,
        push_share: float = 0.4,
    ) -> None:
        self.http, self.base, self.city, self.push = http, base, town, push
        self.rng = random.Random(seed)
        self.push_share = push_share
        self.record = Record()
        self.shoppers: list[Shopper] = []
        self._next = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keys = itertools.count()

    # -- requests ---------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, token: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
        data = None if body is None else orjson.dumps(body)
        try:
            async with self.http.request(method, self.base + path, data=data, headers=hdrs) as r:
                payload = await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError):
            return 0, None
        self.record.statuses[status] = self.record.statuses.get(status, 0) + 1
        try:
            return status, orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return status, None

    async def _until_answered(
        self, method: str, path: str, token: str, body: Any = None, **headers: str
    ) -> tuple[int, Any, list[int]]:
        """The first answer that is no lost answer, 502 or 503 (status 0 if none came
        within RETRY_FOR_SECONDS), and the statuses of the attempts that failed before it."""
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        failed: list[int] = []
        while True:
            status, answer = await self._call(method, path, token, body, **headers)
            if status not in RETRYABLE:
                return status, answer, failed
            failed.append(status)
            self.record.errors_at.append(time.monotonic())
            if time.monotonic() > deadline:
                return 0, None, failed
            await asyncio.sleep(0.2)

    # -- shoppers ---------------------------------------------------------------------------

    async def enrol(self) -> Shopper | None:
        app = self.city.tokens["app"]
        body = {"name": "Soak shopper", "marketing_consent": True, "timezone": "Europe/Paris"}
        status, made, _ = await self._until_answered("POST", "/v1/shoppers", app, body)
        if status != 201:
            return None
        s = Shopper(id=int(made["id"]), token=made["token"])
        self._new_visit(s)
        if self.rng.random() < GOLD_SHARE:
            store = self.city.stores[s.store].id
            purchase = {"shopper_id": made["id"], "store_id": store, "amount": 2500}
            key = f"soak-buy-{made['id']}"
            await self._until_answered(
                "POST",
                "/v1/purchases",
                self.city.tokens["pos"],
                purchase,
                **{"Idempotency-Key": key},
            )
        if self.rng.random() < self.push_share:
            sub = self.push.subscribe(self.city.vapid_key)
            await self._until_answered(
                "POST", "/v1/push-subscriptions", s.token, sub.subscription_info()
            )
        self.record.enrolled += 1
        return s

    async def populate(self, n: int, concurrency: int = 16) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                s = await self.enrol()
            if s is not None:
                self.shoppers.append(s)

        await asyncio.gather(*(one() for _ in range(n)))

    def _new_visit(self, s: Shopper) -> None:
        s.store = self.rng.randrange(len(self.city.stores))
        shop = self.city.stores[s.store]
        angle = self.rng.uniform(0, 2 * math.pi)
        s.pos = city.offset(shop.lon, shop.lat, 600 * math.cos(angle), 600 * math.sin(angle))
        s.step = 0

    def _where(self, s: Shopper) -> tuple[float, float]:
        if s.step == 0:
            return s.pos
        shop = self.city.stores[s.store]
        return city.offset(shop.lon, shop.lat, self.rng.gauss(0, 5), self.rng.gauss(0, 5))

    def pick(self) -> Shopper | None:
        """The next shopper not already waiting for an answer, round robin."""
        n = len(self.shoppers)
        for _ in range(min(n, 64)):
            s = self.shoppers[next(self._next) % n]
            if not s.busy:
                return s
        return None

    # -- pings ------------------------------------------------------------------------------

    async def ping(self, s: Shopper, scheduled: float) -> None:
        s.busy = True
        lon, lat = self._where(s)
        ts = dt.datetime.now(dt.UTC)
        body = {
            "id": str(uuid.uuid4()),
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "accuracy_m": 10,
            "ts": ts.isoformat(),
            "weather": {"condition": "rain", "temp_c": 6},
        }
        p = Ping(scheduled=scheduled)
        self.record.pings.append(p)
        try:
            status, answer, failed = await self._until_answered("POST", "/v1/pings", s.token, body)
            p.failed, p.attempts = len(failed), len(failed) + 1
            if status != 200:
                self.record.unanswered += 1
                return
            p.latency = time.monotonic() - scheduled
            self.record.answered.add((s.id, ts))
            if 0 in failed or 502 in failed:
                self.record.cut.add((s.id, ts))
            self._take(s, answer)
        finally:
            s.busy = False
        self._advance(s)

    def _take(self, s: Shopper, answer: dict[str, Any]) -> None:
        stores = [t["store_id"] for t in answer["transitions"] if t["event"] != "exit"]
        for sent in answer["offers"]:
            self.record.deliveries.add(str(sent["delivery_id"]))
            code = sent["coupon"]["code"]
            store = stores[0] if stores else self.city.stores[s.store].id
            self.record.coupons[code] = store
            if self.rng.random() < 0.5:
                self._spawn(self.redeem(code, store, again=self.rng.random() < 0.1))

    def _advance(self, s: Shopper) -> None:
        s.step += 1
        if s.step == 3:
            s.visits += 1
            if s.visits >= VISITS:
                self._spawn(self._replace(s))
            else:
                self._new_visit(s)

    async def _replace(self, old: Shopper) -> None:
        old.busy = True  # retired: not picked while its successor enrols
        new = await self.enrol()
        if new is not None:
            self.shoppers[self.shoppers.index(old)] = new

    async def redeem(self, code: str, store: str, *, again: bool) -> None:
        await asyncio.sleep(self.rng.uniform(0, 2))
        pos = self.city.tokens["pos"]
        body = {"code": code, "store_id": store, "amount": 5.0}
        status, _, _ = await self._until_answered(
            "POST", "/v1/redemptions", pos, body, **{"Idempotency-Key": f"soak-{code}"}
        )
        if status != 201:
            self.record.redemption_failures += 1
            return
        self.record.redeemed.add(code)
        if again:  # the cashier scans it again: a new request, refused
            key = f"soak-again-{next(self._keys)}"
            status, _, _ = await self._until_answered(
                "POST", "/v1/redemptions", pos, body, **{"Idempotency-Key": key}
            )
            if status == 201:
                self.record.second_scans_accepted += 1
            else:
                self.record.second_scans_refused += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- load shapes ------------------------------------------------------------------------

    async def closed_loop(self, seconds: float, concurrency: int) -> float:
        """As fast as ``concurrency`` clients go for ``seconds``: pings answered per second."""
        end = time.monotonic() + seconds
        done = 0

        async def client() -> None:
            nonlocal done
            while time.monotonic() < end:
                s = self.pick()
                if s is None:
                    await asyncio.sleep(0.01)
                    continue
                await self.ping(s, time.monotonic())
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.monotonic() - started)

    async def open_loop(self, rate: float, seconds: float) -> None:
        """Pings on a fixed schedule of ``rate`` per second, whatever the answers do."""
        start = time.monotonic()
        interval = 1.0 / rate
        i = 0
        while True:
            due = start + i * interval
            if due - start >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            s = self.pick()
            if s is not None:
                self._spawn(self.ping(s, due))
            else:
                self.record.skipped += 1
            i += 1

    async def settle(self, within: float = RETRY_FOR_SECONDS + 30) -> None:
        """Wait for every request still under way (retries included)."""
        deadline = time.monotonic() + within
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=1)
