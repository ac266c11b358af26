"""`gateway demo`: the whole product on a simulated city, through the real HTTP API.

It makes a fresh database, starts the gateway in this process on a loopback port (with
a clock the simulation moves, so a day passes in about a minute), starts a local Web
Push service (gateway.localpush: it checks each VAPID JWT and decrypts each payload),
and then plays one weekday morning in central Paris:

1. the city: a merchant, a few dozen coffee shops on real Paris streets (positions are
   generated near them, seeded), a geofence each (circles, and polygons for some
   blocks), and ten offers that show the rules (cold mornings, rain, a tier-only offer,
   a 20 % holdout, a lunch dwell offer, a budget, a paused and a weekend-only offer);
2. the shoppers: hundreds of them walk from home to a shop and on, pinging every 30
   simulated seconds with GPS noise and varying accuracy; a share subscribe to Web
   Push; some open their coupons, redeem them at the till (a few try a second scan,
   which fails), and buy; held-out shoppers buy too, less often;
3. progress: live counters on stderr;
4. the results: the per-offer funnel from the reports API, suppressions by reason, and
   the uplift against the holdout; an HTML report with a map and charts.

Everything is seeded: the same --seed gives the same walk, decisions and summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from gateway import clock, db, migrate, settings
from gateway.accounts import auth, tenancy
from gateway.app import create_app
from gateway.db import POOL
from gateway.demo import localpush
from gateway.pingpath.pings import PINGS

PARIS = ZoneInfo("Europe/Paris")
CENTRE = (2.3470, 48.8590)  # lon, lat: between Châtelet and the Louvre
M_PER_DEG = 111_320.0
DAY = dt.date(2026, 1, 14)  # a Wednesday in January
DB_NAME = "gateway_demo"

# Real streets of central Paris; the shops are placed near the centre, not at these
# exact addresses.
STREETS = [
    "Rue de Rivoli",
    "Rue Saint-Honoré",
    "Rue du Louvre",
    "Rue Montorgueil",
    "Rue Saint-Denis",
    "Boulevard de Sébastopol",
    "Rue de Turbigo",
    "Rue Réaumur",
    "Rue du Temple",
    "Rue des Archives",
    "Rue Vieille-du-Temple",
    "Rue de Bretagne",
    "Rue Saint-Antoine",
    "Rue de la Roquette",
    "Boulevard Saint-Germain",
    "Rue de Rennes",
    "Rue du Bac",
    "Rue de Seine",
    "Rue Mouffetard",
    "Boulevard Saint-Michel",
    "Rue Soufflot",
    "Rue de Buci",
    "Rue Dauphine",
    "Quai de la Mégisserie",
    "Rue des Petits-Champs",
    "Avenue de l'Opéra",
    "Rue de la Paix",
    "Rue Sainte-Anne",
    "Rue Étienne-Marcel",
    "Rue Rambuteau",
    "Rue Beaubourg",
    "Rue de Charonne",
    "Rue Oberkampf",
    "Rue de Lappe",
    "Rue des Rosiers",
    "Rue de Sèvres",
]


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


@dataclasses.dataclass(slots=True)
class Summary:
    pings: int = 0
    ping_status: Counter[str] = dataclasses.field(default_factory=Counter)
    transitions: Counter[str] = dataclasses.field(default_factory=Counter)
    offers_received: int = 0
    opened: int = 0
    redemptions: int = 0
    second_scans_refused: int = 0
    purchases: int = 0
    pushes_received: int = 0
    offers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    suppressed: Counter[str] = dataclasses.field(default_factory=Counter)
    report: Path | None = None
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


Progress = Callable[[Summary, dt.datetime], None]


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (
        lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))),
        lat + north_m / M_PER_DEG,
    )


def metres(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(east, north) metres from a to b, locally flat."""
    return (
        (b[0] - a[0]) * M_PER_DEG * math.cos(math.radians(a[1])),
        (b[1] - a[1]) * M_PER_DEG,
    )


def weather_at(local: dt.datetime) -> dict[str, Any]:
    """A cold clear morning, rain from ten, clouds after noon."""
    h = local.hour + local.minute / 60
    if h < 10:
        return {"condition": "clear", "temp_c": round(1.0 + (h - 6) * 1.2, 1)}
    if h < 12:
        return {"condition": "rain", "temp_c": 8.0}
    return {"condition": "clouds", "temp_c": 11.0}


async def fresh_database(server_url: str, name: str = DB_NAME) -> str:
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
class Store:
    id: str
    name: str
    lon: float
    lat: float
    fences: list[str]


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
        start_local = dt.datetime.combine(DAY, dt.time(0), PARIS) + dt.timedelta(
            hours=options.start_hour
        )
        self.start = start_local.astimezone(dt.UTC)
        self.end = self.start + dt.timedelta(hours=options.hours)
        self.clock = DemoClock(self.start)
        self.summary = Summary()
        self.stores: list[Store] = []
        self.offer_ids: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.walkers: list[Walker] = []
        self.base = ""
        self._keys = 0

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

    async def build_city(self, pool: asyncpg.Pool) -> None:
        async with db.acquire(pool) as conn:
            merchant = await tenancy.create_merchant(conn, "Corner Coffee")
            for role in ("admin", "manager", "reviewer", "pos", "app"):
                _, self.tokens[role] = await auth.create_key(
                    conn, merchant_id=merchant.id, role=auth.Role(role)
                )
        manager = self.tokens["manager"]
        hours = {d: ["07:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        names = list(STREETS)
        self.rng.shuffle(names)
        features = []
        for i in range(self.o.stores):
            ring = 300 + 2200 * math.sqrt(self.rng.random())
            angle = self.rng.uniform(0, 2 * math.pi)
            lon, lat = offset(*CENTRE, ring * math.cos(angle), ring * math.sin(angle))
            _, store = await self.call(
                "POST",
                "/v1/stores",
                manager,
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
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                    "properties": {"store_id": store["id"], "name": "door", "radius_m": radius},
                }
            )
            if i % 4 == 0:  # the block around some shops, as a polygon
                corners = [
                    offset(lon, lat, r * math.cos(a), r * math.sin(a))
                    for r, a in ((140, 0.3), (120, 1.9), (150, 3.4), (130, 4.9))
                ]
                ring_coords = [[round(x, 6), round(y, 6)] for x, y in corners]
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[*ring_coords, ring_coords[0]]],
                        },
                        "properties": {"store_id": store["id"], "name": "block"},
                    }
                )
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
        await self.create_offers()

    async def create_offers(self) -> None:
        everywhere = [s.id for s in self.stores]
        opening = everywhere[:3]
        coupon = {"valid_minutes": 90, "barcode_format": "qr"}
        once_a_day = [{"max": 1, "days": 1}]
        offers: list[dict[str, Any]] = [
            {
                "name": "Cold mornings",
                "title": "20% off a hot coffee",
                "body": "It's cold out: warm up with us",
                "store_ids": everywhere,
                "trigger": "enter",
                "schedule": {
                    "weekly": {d: ["07:00-10:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
                },
                "weather": {"max_temp_c": 8},
                "caps": once_a_day,
                "priority": 10,
                "coupon": {**coupon, "discount": "20% off", "discount_pct": 20},
            },
            {
                "name": "Rainy day",
                "title": "A hot chocolate on us",
                "body": "Rain outside, cocoa inside",
                "store_ids": everywhere,
                "trigger": "enter",
                "weather": {"conditions": ["rain", "drizzle"]},
                "caps": once_a_day,
                "priority": 8,
                "coupon": {**coupon, "discount": "free hot chocolate"},
            },
            {
                "name": "Gold members",
                "title": "A pastry for our Gold members",
                "body": "Thank you for being Gold",
                "store_ids": everywhere,
                "trigger": "enter",
                "audience": {"tiers": ["Gold", "Platinum"]},
                "caps": once_a_day,
                "priority": 6,
                "coupon": {**coupon, "discount": "free pastry"},
            },
            {
                "name": "Latte test",
                "title": "1 euro off any latte",
                "body": "Your latte, a little cheaper",
                "store_ids": everywhere,
                "trigger": "enter",
                "holdout_pct": 20,
                "caps": once_a_day,
                "priority": 4,
                "coupon": {**coupon, "discount": "1 EUR off", "discount_amount": 1},
            },
            {
                "name": "Lunch while you wait",
                "title": "Sandwich + drink 7.50",
                "body": "Staying a while? Lunch is ready",
                "store_ids": everywhere,
                "trigger": "dwell",
                "schedule": {
                    "weekly": {d: ["11:30-14:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
                },
                "caps": once_a_day,
                "priority": 5,
                "coupon": {**coupon, "discount": "lunch 7.50"},
            },
            {
                "name": "New shops",
                "title": "Opening week: 30% off",
                "body": "Come and see our new shop",
                "store_ids": opening,
                "trigger": "enter",
                "budget": {"max_issued": 12},
                "caps": once_a_day,
                "priority": 20,
                "coupon": {**coupon, "discount": "30% off", "discount_pct": 30},
            },
            {
                "name": "Regulars",
                "title": "Double points today",
                "body": "For regulars with 500+ points",
                "store_ids": everywhere,
                "trigger": "enter",
                "audience": {"min_points": 500},
                "caps": once_a_day,
                "priority": 3,
                "coupon": {**coupon, "discount": "double points"},
            },
            {
                "name": "Students",
                "title": "Student espresso 1 euro",
                "body": "Show your card",
                "store_ids": everywhere,
                "trigger": "enter",
                "audience": {"tags": ["student"]},
                "caps": once_a_day,
                "priority": 2,
                "coupon": {**coupon, "discount": "espresso 1 EUR"},
            },
            {
                "name": "Evening (paused)",
                "title": "Happy hour",
                "body": "Paused by the manager",
                "store_ids": everywhere,
                "trigger": "enter",
                "status": "paused",
                "coupon": {**coupon, "discount": "2 for 1"},
            },
            {
                "name": "Weekend brunch",
                "title": "Brunch for two",
                "body": "Saturdays and Sundays",
                "store_ids": everywhere,
                "trigger": "enter",
                "schedule": {"weekly": {"sat": ["09:00-14:00"], "sun": ["09:00-14:00"]}},
                "coupon": {**coupon, "discount": "brunch 25 EUR"},
            },
        ]
        for body in offers:
            _, made = await self.call(
                "POST",
                "/v1/offers",
                self.tokens["manager"],
                {"channels": ["inbox", "webpush"], **body},
            )
            self.offer_ids[made["id"]] = body["name"]

    # -- the shoppers ---------------------------------------------------------------------

    async def enrol(self, push: localpush.PushService, vapid_key: str) -> None:
        app = self.tokens["app"]
        span = (self.end - self.start).total_seconds()
        for i in range(self.o.shoppers):
            _, made = await self.call(
                "POST",
                "/v1/shoppers",
                app,
                {
                    "name": f"Shopper {i + 1}",
                    "marketing_consent": self.rng.random() > 0.05,
                    "timezone": "Europe/Paris",
                },
            )
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
            "weather": weather_at(now.astimezone(PARIS)),
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

    async def walk(self) -> None:
        now = self.start
        last_progress = 0.0
        while now < self.end:
            self.clock.set(now)
            for w in self.walkers:
                if self._step(w, now):
                    await self.ping(w, now)
                    if w.phase == "at_store" and self.rng.random() < 0.3:
                        await self.at_the_till(w)
            if self.progress is not None and time.monotonic() - last_progress > 0.2:
                last_progress = time.monotonic()
                self.progress(self.summary, now)
            now += dt.timedelta(seconds=self.o.step_seconds)
        self.clock.set(self.end)

    # -- results --------------------------------------------------------------------------

    async def results(self, push: localpush.PushService, worker_idle: Callable[[], Any]) -> None:
        await worker_idle()
        self.summary.pushes_received = len(push.received)
        reviewer = self.tokens["reviewer"]
        for offer_id, name in self.offer_ids.items():
            _, rep = await self.call("GET", f"/v1/reports/offers/{offer_id}", reviewer)
            funnel = rep["funnel"]
            self.summary.offers.append({"id": offer_id, "name": name, **funnel})
            for reason, n in funnel["suppressed"]["by_reason"].items():
                if n:
                    self.summary.suppressed[reason] += n


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
) -> Summary:
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
        ),
        db_url=url,
        clock_=demo.clock,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    demo.base = f"http://127.0.0.1:{bound}"
    push = localpush.PushService()
    await push.start()

    try:
        async with aiohttp.ClientSession() as http:
            demo.http = http
            pool = app[POOL]
            await demo.build_city(pool)
            _, key = await demo.call("GET", "/v1/push/vapid-public-key", demo.tokens["app"])
            await demo.enrol(push, key["public_key"])
            await demo.walk()
            await app[PINGS].log.flush()
            await demo.results(push, lambda: _drain(pool))
            demo.summary.seconds = time.monotonic() - started
            demo.summary.tokens = dict(demo.tokens)
            if demo.walkers:
                demo.summary.tokens["shopper"] = demo.walkers[0].token
            demo.summary.report = write_report(demo, options.out)
            if serve:
                demo.clock.release()
                demo.summary.tokens["url"] = demo.base
                sys.stderr.write(render_summary(demo.summary) + "\n")
                sys.stderr.write(render_tokens(demo.summary) + "\n")
                await asyncio.Event().wait()
    finally:
        await push.close()
        await runner.cleanup()
    return demo.summary


# -- rendering ----------------------------------------------------------------------------


def progress_line(s: Summary, now: dt.datetime) -> str:
    local = now.astimezone(PARIS).strftime("%H:%M")
    return (
        f"\r{local}  pings {s.pings:,}  transitions {sum(s.transitions.values()):,}  "
        f"offers {s.offers_received:,}  opened {s.opened:,}  redeemed {s.redemptions:,}"
        "\x1b[K"
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.0f}pt"


def render_summary(s: Summary) -> str:
    lines = [
        "",
        f"Simulated a morning of {s.pings:,} pings in {s.seconds:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s.ping_status.items())),
        "transitions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.transitions.items())),
        f"coupons in ping answers {s.offers_received:,}; Web Push messages decrypted at the "
        f"push service {s.pushes_received:,}; opened {s.opened:,}; redeemed {s.redemptions:,}; "
        f"second scans refused {s.second_scans_refused:,}; purchases {s.purchases:,}",
        "",
        f"{'offer':<22}{'eligible':>9}{'sent':>6}{'held':>6}{'deliv.':>7}{'opened':>7}"
        f"{'redeem.':>8}{'conv. sent':>11}{'holdout':>9}{'uplift':>8}",
    ]
    for o in s.offers:
        h, up = o["holdout"], o["holdout"]["uplift"]
        lines.append(
            f"{o['name'][:21]:<22}{o['eligible']:>9}{o['sent']:>6}{h['holdout']['decisions']:>6}"
            f"{o['delivered']:>7}{o['opened']:>7}{o['redeemed']:>8}"
            f"{_pct(up['treated_rate']):>11}{_pct(up['holdout_rate']):>9}"
            f"{_signed(up['absolute']):>8}"
        )
    lines += [
        "",
        "suppressed, by reason: " + ", ".join(f"{k} {v:,}" for k, v in s.suppressed.most_common()),
    ]
    if s.report is not None:
        lines.append(f"report: {s.report.resolve()}")
    return "\n".join(lines)


def render_tokens(s: Summary) -> str:
    lines = [f"The gateway keeps running at {s.tokens.get('url', '')} (Ctrl-C stops it). Tokens:"]
    for role in ("admin", "manager", "reviewer", "pos", "app", "shopper"):
        if role in s.tokens:
            lines.append(f"  {role:<9}{s.tokens[role]}")
    return "\n".join(lines)


def _svg_map(demo: Demo, width: int = 720, height: int = 560) -> str:
    lons = [s.lon for s in demo.stores] or [CENTRE[0]]
    lats = [s.lat for s in demo.stores] or [CENTRE[1]]
    pad = 0.004
    west, east = min(lons) - pad, max(lons) + pad
    south, north = min(lats) - pad, max(lats) + pad
    kx = width / (east - west)
    ky = height / (north - south)
    k = min(kx, ky * math.cos(math.radians(CENTRE[1])))

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (
            (lon - west) * k,
            (north - lat) * k / math.cos(math.radians(CENTRE[1])),
        )

    shapes = []
    for f in demo.geofences["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            x, y = xy(*g["coordinates"])
            r = f["properties"]["radius_m"] / M_PER_DEG * k
            shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{max(r, 2):.1f}" class="fence"/>')
        elif g["type"] == "Polygon":
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(*c) for c in g["coordinates"][0]))
            shapes.append(f'<polygon points="{pts}" class="fence"/>')
    for s in demo.stores:
        x, y = xy(s.lon, s.lat)
        shapes.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="store"><title>'
            f"{html.escape(s.name)}</title></circle>"
        )
    for w in demo.walkers[:200]:
        x, y = xy(*w.home)
        shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.2" class="home"/>')
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="stores and geofences">{"".join(shapes)}</svg>'
    )


def _bars(rows: list[tuple[str, list[tuple[str, int]]]], width: int = 720) -> str:
    colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"]
    top = max([v for _, vals in rows for _, v in vals] + [1])
    row_h, label_w = 22, 170
    out = []
    y = 0
    for label, vals in rows:
        out.append(f'<text x="0" y="{y + 15}" class="label">{html.escape(label)}</text>')
        bar_h = (row_h - 4) / max(len(vals), 1)
        for i, (name, v) in enumerate(vals):
            w = (width - label_w - 60) * v / top
            yy = y + i * bar_h
            out.append(
                f'<rect x="{label_w}" y="{yy:.1f}" width="{w:.1f}" height="{bar_h - 1:.1f}" '
                f'fill="{colours[i % len(colours)]}"><title>{name}: {v}</title></rect>'
            )
            out.append(
                f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 2:.1f}" class="value">{v}</text>'
            )
        y += row_h + 6
    return f'<svg viewBox="0 0 {width} {y}" width="{width}" height="{y}">{"".join(out)}</svg>'


def write_report(demo: Demo, path: Path) -> Path:
    s = demo.summary
    metrics = ["eligible", "sent", "delivered", "opened", "redeemed"]
    funnel_rows = [(o["name"], [(m, int(o[m])) for m in metrics]) for o in s.offers]
    reasons = [(k, [(k, v)]) for k, v in s.suppressed.most_common()]
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {m}</span>'
        for m, c in zip(
            metrics, ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"], strict=True
        )
    )
    summary_text = html.escape(render_summary(dataclasses.replace(s, report=None)))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gateway demo report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 780px; color: #222 }}
.fence {{ fill: #4e79a733; stroke: #4e79a7; stroke-width: 1 }}
.store {{ fill: #e15759 }} .home {{ fill: #999 }}
.label, .value {{ font-size: 12px }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto }}
svg {{ display: block; margin: 1em 0 }}
</style></head><body>
<h1>Corner Coffee: one simulated morning</h1>
<p>{DAY.isoformat()} in central Paris, seed {demo.o.seed}: {len(demo.stores)} shops,
{len(demo.geofences["features"])} geofences, {len(demo.walkers)} shoppers,
{s.pings:,} pings through the HTTP API.</p>
<h2>Shops and geofences</h2>
<p>Red: shops; blue: geofences (door circles and block polygons); grey: shoppers' homes.</p>
{_svg_map(demo)}
<h2>Funnel per offer</h2><p>{legend}</p>
{_bars(funnel_rows)}
<h2>Why offers were not sent</h2>
{_bars(reasons)}
<h2>Summary</h2><pre>{summary_text}</pre>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
