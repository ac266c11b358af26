"""The demo's simulation: the gateway in this process on a simulated clock, a local Web
Push service, and shoppers who walk, ping, open, redeem and buy through the HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from gateway import clock, db, migrate, settings
from gateway.accounts import auth, tenancy
from gateway.app import create_app
from gateway.db import POOL
from gateway.demo import city, journeys, localpush, page, referrals, report, rewards
from gateway.demo import surveys as demo_surveys
from gateway.demo.city import PARIS, Store, metres, offset
from gateway.pingpath import offering
from gateway.pingpath.offering import OFFERS
from gateway.pingpath.pings import PINGS


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    seed: int = 7
    shoppers: int = 300
    stores: int = 36
    start_hour: float = 6.0  # local time the simulated day starts
    hours: float = 8.0
    step_seconds: int = 30
    push_share: float = 0.4
    out: Path = Path("demo-report.html")


Progress = Callable[[report.Summary, dt.datetime], None]


async def fresh_database(server_url: str, name: str = city.DB_NAME) -> str:
    """Drop and create ``name`` on the server of ``server_url``; migrate it; its URL."""
    url = await db.create_database(server_url, name, replace=True)
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    return url


class DemoClock(clock.FixedClock):
    """The simulation's clock until released, then the real one (for --serve)."""

    released = False

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) if self.released else super().now()

    def release(self) -> None:
        self.released = True


@dataclasses.dataclass(slots=True)
class Walker:
    id: str
    token: str
    home: tuple[float, float]
    store: int  # index into the stores
    leave_at: dt.datetime
    speed: float
    stay_s: float
    accuracy: float
    subscriber: localpush.Subscriber | None = None
    pos: tuple[float, float] = (0.0, 0.0)
    phase: str = "home"  # home, to_store, at_store, away, done
    phase_until: dt.datetime | None = None
    away: tuple[float, float] = (0.0, 0.0)
    coupons: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    bought: bool = False


class Demo:
    http: aiohttp.ClientSession
    geofences: dict[str, Any]

    def __init__(self, options: Options, *, database_url: str, progress: Progress | None) -> None:
        self.o = options
        self.url = database_url
        self.progress = progress
        self.rng = random.Random(options.seed)
        start_local = dt.datetime.combine(city.DAY, dt.time(0), PARIS) + dt.timedelta(
            hours=options.start_hour
        )
        self.start = start_local.astimezone(dt.UTC)
        self.end = self.start + dt.timedelta(hours=options.hours)
        self.clock = DemoClock(self.start)
        self.summary = report.Summary()
        self.stores: list[Store] = []
        self.offer_ids: dict[str, str] = {}
        # The offers the lifecycle journeys send (gateway.demo.journeys).
        self.journey_offers: set[str] = set()
        self.tokens: dict[str, str] = {}
        self.walkers: list[Walker] = []
        self.base = ""
        self._keys = 0
        # Its own random stream, so the rest of the morning plays as it did without it.
        self.survey = demo_surveys.DemoSurvey(self.call, random.Random(options.seed + 1))
        self.pool: asyncpg.Pool | None = None
        self.books = offering.OfferBooks()

    # -- plumbing -------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        idempotency: bool = False,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        if idempotency:
            self._keys += 1
            headers["Idempotency-Key"] = f"demo-{self.o.seed}-{self._keys}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = content_type
        async with self.http.request(method, self.base + path, data=data, headers=headers) as r:
            payload = await r.json() if r.content_type.endswith("json") else await r.read()
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {payload!r}")
            return r.status, payload

    # -- the city -------------------------------------------------------------------------

    # -- the city -------------------------------------------------------------------------

    async def build_city(self, pool: asyncpg.Pool) -> None:
        async with db.acquire(pool) as conn:
            merchant = await tenancy.create_merchant(conn, "Corner Coffee")
            for role in ("admin", "manager", "reviewer", "pos", "app"):
                _, self.tokens[role] = await auth.create_key(
                    conn, merchant_id=merchant.id, role=auth.Role(role)
                )
        manager = self.tokens["manager"]
        features = await self.open_shops()
        await self.call(
            "PUT",
            "/v1/geofences",
            manager,
            {"type": "FeatureCollection", "features": features},
            content_type="application/geo+json",
        )
        _, listing = await self.call("GET", "/v1/geofences?format=geojson", manager)
        by_store = {s.id: s for s in self.stores}
        for f in listing["features"]:
            by_store[f["properties"]["store_id"]].fences.append(f["id"])
        self.geofences = listing
        await self.call(
            "PUT",
            "/v1/program",
            manager,
            {"daily_offer_cap": 3, "quiet_hours": {"start": "21:00", "end": "08:00"}},
        )
        for body in city.offer_bodies([s.id for s in self.stores]):
            _, made = await self.call("POST", "/v1/offers", manager, body)
            self.offer_ids[made["id"]] = body["name"]
        await self.survey.define(manager)
        await journeys.define(self)

    async def open_shops(self) -> list[dict[str, Any]]:
        """Create the shops through the API; their geofences, to be put in one request."""
        hours = {d: ["07:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        names = list(city.STREETS)
        self.rng.shuffle(names)
        features = []
        for i in range(self.o.stores):
            lon, lat = city.place_shop(self.rng)
            _, store = await self.call(
                "POST",
                "/v1/stores",
                self.tokens["manager"],
                {
                    "name": f"Corner Coffee {names[i % len(names)]}",
                    "lat": round(lat, 6),
                    "lon": round(lon, 6),
                    "timezone": "Europe/Paris",
                    "opening_hours": hours,
                },
            )
            self.stores.append(
                Store(id=store["id"], name=store["name"], lon=lon, lat=lat, fences=[])
            )
            radius = self.rng.choice([50, 60, 75, 90])
            # The block around every fourth shop, as a polygon.
            features += city.shop_fences(store["id"], lon, lat, radius, block=i % 4 == 0)
        return features

    # -- the shoppers ---------------------------------------------------------------------

    async def enrol(self, push: localpush.PushService, vapid_key: str) -> None:
        app = self.tokens["app"]
        span = (self.end - self.start).total_seconds()
        code = ""
        for i in range(self.o.shoppers):
            body = {
                "name": f"Shopper {i + 1}",
                "marketing_consent": self.rng.random() > 0.05,
                "timezone": "Europe/Paris",
            }
            if referrals.invited(i):
                body["referral_code"] = code
            _, made = await self.call("POST", "/v1/shoppers", app, body)
            if referrals.invited(i + 1):
                code = await referrals.code_of(self, made["token"])
            store = self.rng.randrange(len(self.stores))
            s = self.stores[store]
            home = offset(s.lon, s.lat, self.rng.uniform(-900, 900), self.rng.uniform(-900, 900))
            w = Walker(
                id=made["id"],
                token=made["token"],
                home=home,
                store=store,
                leave_at=self.start + dt.timedelta(seconds=self.rng.uniform(0, span * 0.85)),
                speed=self.rng.uniform(1.1, 1.6),
                stay_s=self.rng.uniform(240, 900),
                accuracy=self.rng.choice([8, 10, 12, 15, 20, 25, 35, 50]),
                pos=home,
            )
            if referrals.invited(i):
                self.summary.purchases += await referrals.first_purchase(self, w.id, s.id)
            roll = self.rng.random()
            if roll < 0.15:  # regulars with a lot of points: Gold
                await self.call(
                    "POST",
                    "/v1/purchases",
                    self.tokens["pos"],
                    {"shopper_id": w.id, "store_id": s.id, "amount": 2500},
                    idempotency=True,
                )
            elif roll < 0.35:
                await self.call(
                    "POST",
                    "/v1/purchases",
                    self.tokens["pos"],
                    {"shopper_id": w.id, "store_id": s.id, "amount": 600},
                    idempotency=True,
                )
            if self.rng.random() < 0.2:
                await self.call(
                    "PATCH", f"/v1/shoppers/{w.id}", self.tokens["manager"], {"tags": ["student"]}
                )
            if self.rng.random() < self.o.push_share:
                w.subscriber = push.subscribe(vapid_key)
                await self.call(
                    "POST", "/v1/push-subscriptions", w.token, w.subscriber.subscription_info()
                )
            self.walkers.append(w)
        self.summary.purchases += await referrals.same_phone(self, push, vapid_key)

    def _step(self, w: Walker, now: dt.datetime) -> bool:
        """Move the walker to ``now``; whether it pings at this step."""
        step = self.o.step_seconds
        if w.phase == "home":
            if now < w.leave_at:
                return False
            w.phase = "to_store"
        s = self.stores[w.store]
        if w.phase == "to_store":
            target = (s.lon, s.lat)
        elif w.phase == "away":
            target = w.away
        else:
            target = w.pos
        if w.phase in ("to_store", "away"):
            east, north = metres(w.pos, target)
            dist = math.hypot(east, north)
            move = w.speed * step
            if dist <= move + 5:
                w.pos = target
                if w.phase == "to_store":
                    w.phase, w.phase_until = "at_store", now + dt.timedelta(seconds=w.stay_s)
                else:
                    w.phase = "done"
            else:
                w.pos = offset(*w.pos, east / dist * move, north / dist * move)
        elif w.phase == "at_store" and w.phase_until is not None and now >= w.phase_until:
            angle = self.rng.uniform(0, 2 * math.pi)
            w.away = offset(s.lon, s.lat, 600 * math.cos(angle), 600 * math.sin(angle))
            w.phase = "away"
        return w.phase != "done"

    async def ping(self, w: Walker, now: dt.datetime) -> None:
        accuracy = w.accuracy if self.rng.random() > 0.03 else 250.0
        sigma = accuracy / 2
        lon, lat = offset(*w.pos, self.rng.gauss(0, sigma), self.rng.gauss(0, sigma))
        body = {
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "accuracy_m": accuracy,
            "ts": now.isoformat().replace("+00:00", "Z"),
            "weather": city.weather_at(now.astimezone(PARIS)),
        }
        _, answer = await self.call("POST", "/v1/pings", w.token, body)
        self.summary.pings += 1
        self.summary.ping_status[answer["status"]] += 1
        for t in answer["transitions"]:
            self.summary.transitions[t["event"]] += 1
        stores = [t["store_id"] for t in answer["transitions"] if t["event"] != "exit"]
        for sent in answer["offers"]:
            self.summary.offers_received += 1
            # Valid at the store whose geofence the shopper just entered or dwells in.
            w.coupons.append({**sent, "store_id": stores[0] if stores else None})

    async def at_the_till(self, w: Walker) -> None:
        """The shopper at the shop: opens and redeems coupons, and may buy anyway."""
        store = self.stores[w.store]
        for sent in w.coupons:
            if sent.get("done") or sent["store_id"] != store.id:
                continue
            sent["done"] = True
            if self.rng.random() < 0.6:
                await self.call("POST", f"/v1/inbox/{sent['delivery_id']}/open", w.token)
                self.summary.opened += 1
                if self.rng.random() < 0.55:
                    body = {
                        "code": sent["coupon"]["code"],
                        "store_id": store.id,
                        "amount": round(self.rng.uniform(3, 14), 2),
                    }
                    await self.call(
                        "POST", "/v1/redemptions", self.tokens["pos"], body, idempotency=True
                    )
                    self.summary.redemptions += 1
                    if self.rng.random() < 0.1:  # the cashier scans it again
                        await self.call(
                            "POST",
                            "/v1/redemptions",
                            self.tokens["pos"],
                            body,
                            idempotency=True,
                            ok=(409,),
                        )
                        self.summary.second_scans_refused += 1
        if not w.bought and self.rng.random() < (0.35 if w.coupons else 0.2):
            w.bought = True
            await self.call(
                "POST",
                "/v1/purchases",
                self.tokens["pos"],
                {
                    "shopper_id": w.id,
                    "store_id": store.id,
                    "amount": round(self.rng.uniform(3, 20), 2),
                },
                idempotency=True,
            )
            self.summary.purchases += 1

    async def walk(self, pool: asyncpg.Pool) -> None:
        now = self.start
        last_progress = 0.0
        while now < self.end:
            self.clock.set(now)
            for w in self.walkers:
                if self._step(w, now):
                    await self.ping(w, now)
                    if w.phase == "at_store" and self.rng.random() < 0.3:
                        await self.at_the_till(w)
            if self.pool is not None:
                await self.survey.tick(self.pool, self.books, now, self.walkers)
            await journeys.tick(self, pool, now)
            if self.progress is not None and time.monotonic() - last_progress > 0.2:
                last_progress = time.monotonic()
                self.progress(self.summary, now)
            now += dt.timedelta(seconds=self.o.step_seconds)
        self.clock.set(self.end)
        await journeys.tick(self, pool, self.end)

    # -- results --------------------------------------------------------------------------

    async def results(self, push: localpush.PushService, worker_idle: Callable[[], Any]) -> None:
        await worker_idle()
        self.summary.pushes_received = len(push.received)
        reviewer = self.tokens["reviewer"]
        self.summary.referrals = await referrals.report(self)
        for offer_id, name in self.offer_ids.items():
            _, rep = await self.call("GET", f"/v1/reports/offers/{offer_id}?by=store", reviewer)
            funnel = rep["funnel"]
            self.summary.offers.append({"id": offer_id, "name": name, **funnel})
            for reason, n in funnel["suppressed"]["by_reason"].items():
                if n:
                    self.summary.suppressed[reason] += n
            for group in rep["breakdown"]:
                shop = self.summary.shops.setdefault(group["key"], Counter())
                for metric in ("candidates", "eligible", "sent", "redeemed"):
                    shop[metric] += group[metric]
        self.summary.survey = await self.survey.report(reviewer)


async def _drain(pool: asyncpg.Pool, within: float = 60.0) -> None:
    """Wait until the outbox has nothing pending (the pushes went out)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with db.acquire(pool) as conn:
            pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
        if not pending:
            return
        await asyncio.sleep(0.2)


async def run(
    options: Options,
    *,
    server_url: str,
    cfg: settings.Settings,
    port: int = 0,
    progress: Progress | None = None,
    serve: bool = False,
    fresh: bool = True,
) -> report.Summary:
    """Play the demo on a fresh database on ``server_url``'s server; the summary."""
    started = time.monotonic()
    url = await fresh_database(server_url) if fresh else server_url
    demo = Demo(options, database_url=url, progress=progress)
    app = create_app(
        cfg.replace(
            ping_rate=1000.0,
            ping_burst=1000,
            redeem_rate=1000.0,
            redeem_burst=1000,
            webpush_allow_http=True,
            pass_pusher=False,
            outbox_worker=True,
            migrate_on_start=False,
            # The demo sends survey invitations on its simulated clock (Demo.walk).
            survey_invite_seconds=10**7,
            # The walk runs the journeys' rounds itself, in its own order (gateway.demo.journeys).
            journeys_seconds=10.0**9,
        ),
        db_url=url,
        direct_url=url,  # its own database, not the settings' direct one
        clock_=demo.clock,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # On GATEWAY_HOST, so that a Prometheus beside it can scrape the demo's /metrics (the
    # compose file's demo profile); the demo itself calls it on the loopback address.
    site = web.TCPSite(runner, cfg.host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    local = cfg.host if cfg.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    demo.base = f"http://{local}:{bound}"
    push = localpush.PushService()
    await push.start()

    try:
        async with aiohttp.ClientSession() as http:
            demo.http = http
            pool = app[POOL]
            demo.pool, demo.books = pool, app[OFFERS]
            await demo.build_city(pool)
            _, key = await demo.call("GET", "/v1/push/vapid-public-key", demo.tokens["app"])
            await demo.enrol(push, key["public_key"])
            await rewards.morning(demo)
            await journeys.seed_history(demo, pool)
            await demo.walk(pool)
            await journeys.come_back(demo)
            await rewards.points_report(demo)
            await app[PINGS].log.flush()
            await demo.results(push, lambda: _drain(pool))
            await journeys.results(demo)
            demo.summary.seconds = time.monotonic() - started
            demo.summary.tokens = dict(demo.tokens)
            if demo.walkers:
                demo.summary.tokens["shopper"] = demo.walkers[0].token
            demo.summary.report = page.write_report(demo, options.out)
            if serve:
                demo.clock.release()
                demo.summary.tokens["url"] = demo.base
                sys.stderr.write(report.render_summary(demo.summary) + "\n")
                sys.stderr.write(report.render_tokens(demo.summary) + "\n")
                await asyncio.Event().wait()
    finally:
        await push.close()
        await runner.cleanup()
    return demo.summary
