"""The aiohttp application factory: the one place where the packages are wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import clock, db, listen
from gateway.accounts import auth, origins
from gateway.accounts.auth import VERIFIER
from gateway.accounts.origins import ORIGINS
from gateway.clock import CLOCK
from gateway.db import DB_URL, DIRECT_URL, POOL
from gateway.delivery import googlepush, inbox, passpush, wiring
from gateway.delivery.inbox import INBOX_HUB
from gateway.delivery.outbox import WORKER
from gateway.delivery.webpush import VAPID
from gateway.http import instrument, middleware, ratelimit, routing
from gateway.http.handlers import delivery as delivery_handlers
from gateway.http.handlers import (
    geofences,
    google_passes,
    metrics,
    pages,
    passkit,
    points_report,
    program,
    redemptions,
    reports,
    reward_shop,
    rewards,
    stores,
    survey_answers,
    survey_reports,
    surveys,
    system,
    tenancy,
    till,
    wallet_callbacks,
)
from gateway.http.handlers import journeys as journey_handlers
from gateway.http.handlers import loyalty as loyalty_handlers
from gateway.http.handlers import offers as offer_handlers
from gateway.http.handlers import origins as origin_handlers
from gateway.http.handlers import passes as pass_handlers
from gateway.http.handlers import pings as ping_handlers
from gateway.http.handlers import preview as preview_handlers
from gateway.http.handlers import referrals as referral_handlers
from gateway.http.handlers.passes import BUILDING, PASS_CACHE, SIGNERS
from gateway.http.ratelimit import PING_LIMITER, REDEEM_LIMITER
from gateway.http.routing import MOUNTED
from gateway.jobs import journeys, partitions, periodic, retention, stats, upkeep
from gateway.pingpath import geoindex, offering, pinglog, pings, spool, surveying, visits
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.pingpath.offering import OFFERS
from gateway.pingpath.pings import PINGS
from gateway.settings import SETTINGS, Settings

log = logging.getLogger(__name__)


def all_endpoints() -> list[routing.Endpoint]:
    return [
        *system.ENDPOINTS,
        *metrics.ENDPOINTS,
        *tenancy.ENDPOINTS,
        *origin_handlers.ENDPOINTS,
        *stores.ENDPOINTS,
        *geofences.ENDPOINTS,
        *ping_handlers.ENDPOINTS,
        *offer_handlers.ENDPOINTS,
        *journey_handlers.ENDPOINTS,
        *preview_handlers.ENDPOINTS,
        *program.ENDPOINTS,
        *redemptions.ENDPOINTS,
        *reports.ENDPOINTS,
        *delivery_handlers.ENDPOINTS,
        *loyalty_handlers.ENDPOINTS,
        *pass_handlers.ENDPOINTS,
        *google_passes.ENDPOINTS,
        *passkit.ENDPOINTS,
        *wallet_callbacks.ENDPOINTS,
        *rewards.ENDPOINTS,
        *reward_shop.ENDPOINTS,
        *till.ENDPOINTS,
        *points_report.ENDPOINTS,
        *referral_handlers.ENDPOINTS,
        *surveys.ENDPOINTS,
        *survey_answers.ENDPOINTS,
        *survey_reports.ENDPOINTS,
    ]


def create_app(
    settings: Settings,
    *,
    db_url: str | None = None,
    direct_url: str | None = None,
    clock_: clock.Clock | None = None,
) -> web.Application:
    """Build the app. ``db_url`` overrides the settings (tests, workers given a resolved URL),
    and so does ``direct_url``; without either, the direct URL is the settings' or db_url."""
    app = web.Application(
        # Per-endpoint limits are enforced while reading (api.read_limited); this
        # is only aiohttp's own ceiling, the largest of them.
        client_max_size=settings.max_import_bytes,
        # One middleware: the metrics (when on), CORS, request ids, errors and auth.
        middlewares=[middleware.build(instrument.Recorder() if settings.metrics else None)],
    )
    app[SETTINGS] = settings
    app[DB_URL] = db_url or db.resolve_url(settings)
    given_direct = settings.database_direct_url
    app[DIRECT_URL] = direct_url or (given_direct.reveal() if given_direct else app[DB_URL])
    app[CLOCK] = clock_ or clock.SystemClock()
    _add_services(app, settings)
    _mount(app, all_endpoints())
    # The console, /docs and the landing page: for people, so no token and no OpenAPI entry.
    app.router.add_routes(pages.ROUTES)
    app.cleanup_ctx.append(_pool_ctx)
    app.cleanup_ctx.append(_geo_ctx)
    app.cleanup_ctx.append(_jobs_ctx)
    app.cleanup_ctx.append(_delivery_ctx)
    if settings.metrics:
        app.cleanup_ctx.append(instrument.sampler_ctx)
        app.cleanup_ctx.append(metrics.port_ctx)
    return app


def _add_services(app: web.Application, settings: Settings) -> None:
    """The per-process services the handlers reach through their app keys."""
    app[VERIFIER] = auth.TokenVerifier(ttl=settings.token_cache_seconds)
    app[ORIGINS] = origins.OriginLists(max_age=settings.token_cache_seconds)
    log_ = pinglog.PingLog(
        mode=settings.ping_log,
        # Named by the database itself, not by the pooler in front of it.
        spool_dir=spool.directory(settings.data_dir, db.describe(app[DIRECT_URL])),
        flush_seconds=settings.ping_log_flush_seconds,
    )
    app[INBOX_HUB] = inbox.Hub()
    app[SIGNERS] = {}
    app[PASS_CACHE] = pass_handlers.new_cache(settings.pass_cache_mb)
    app[BUILDING] = {}
    app[google_passes.LINK_SIGNERS] = {}
    app[wallet_callbacks.ROOT_KEYS] = wallet_callbacks.key_ring(settings)
    app[OFFERS] = offering.OfferBooks(max_delay_seconds=settings.offer_max_delay_seconds)
    app[GEO_INDEX] = geoindex.IndexHolder(
        poll_seconds=settings.index_poll_seconds, match_kernel=settings.match_kernel
    )
    # Shoppers' visit state as this process last saw it; what fills it and what empties
    # it is all in gateway/pingpath/visits.py.
    visit_cache = visits.VisitCache()
    app[PINGS] = pings.PingService(
        fence_config=settings.fence_config(),
        spoof_config=settings.spoofing_config(),
        log=log_,
        offers=app[OFFERS],
        visit_cache=visit_cache,
    )
    # The auth read of a shopper's key also brings the shopper's visit state (one read,
    # see get_api_keys): it primes the ping path's cache.
    app[VERIFIER].on_shopper_row = visit_cache.prime
    app[PING_LIMITER] = ratelimit.TokenBuckets(rate=settings.ping_rate, burst=settings.ping_burst)
    app[REDEEM_LIMITER] = ratelimit.TokenBuckets(
        rate=settings.redeem_rate, burst=settings.redeem_burst
    )


def _mount(app: web.Application, endpoints: list[routing.Endpoint]) -> None:
    mounted: dict[routing.Handler, routing.Endpoint] = {}
    for ep in endpoints:
        if ep.handler in mounted:
            raise RuntimeError(f"handler {ep.operation_id} is mounted twice")
        mounted[ep.handler] = ep
        app.router.add_route(ep.method, ep.path, ep.handler, name=ep.operation_id)
        if ep.method == "GET":
            # HEAD answers as GET does, without the body (aiohttp leaves it out): uptime
            # checkers and load balancers probe with it.
            app.router.add_route("HEAD", ep.path, ep.handler)
    app[MOUNTED] = mounted


def background_jobs(settings: Settings) -> list[periodic.Job]:
    """What every replica runs in the background; each job's lock lets one at a time work."""
    return [
        partitions.job(),
        retention.job(retention_days=settings.ping_retention_days),
        stats.job(every_seconds=settings.stats_compact_seconds),
        upkeep.job(every_seconds=settings.wallet_upkeep_seconds),
        journeys.job(every_seconds=settings.journeys_seconds),
    ]


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = app[DB_URL]
    log.info("connecting to database", extra={"database": db.describe(url)})
    pool = await db.create_pool(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        pooled=_behind_pooler(app),
    )
    app[POOL] = pool
    try:
        yield
    finally:
        await pool.close()


def _behind_pooler(app: web.Application) -> bool:
    """Whether the request pool goes through a transaction pooler (a direct URL is given)."""
    return app[DIRECT_URL] != app[DB_URL]


async def _geo_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = app[POOL]
    holder = app[GEO_INDEX]
    listener = listen.Listener(app[DIRECT_URL])
    holder.attach(listener)
    app[PINGS].attach(listener)
    app[VERIFIER].attach(listener)
    app[ORIGINS].attach(listener)
    app[OFFERS].attach(listener)
    app[INBOX_HUB].attach(listener)
    app[listen.LISTENER] = listener
    await listener.start(app[SETTINGS].index_poll_seconds)
    await holder.start(pool)
    await app[ORIGINS].start(pool)
    ping_log = app[PINGS].log
    # Its own connection: log batches never wait for a request's, nor requests for them.
    # Direct, past any pooler: this one connection is busy all the time, so a pooler
    # saves nothing, and the batches and their spool marks must not queue behind requests
    # for the pooler's server connections.
    log_pool = await db.create_pool(app[DIRECT_URL], min_size=1, max_size=1)
    ping_log.start(log_pool)
    try:
        yield
    finally:
        await app[ORIGINS].stop()
        await ping_log.stop()
        await log_pool.close()
        await holder.stop()
        await listener.close()


def survey_job(settings: Settings, books: offering.OfferBooks) -> periodic.Job:
    """Sends the survey invitations that came due (gateway/pingpath/surveying.py)."""

    async def round_(r: periodic.Round) -> None:
        await surveying.invite_due(r.pool, books, r.now)

    return periodic.Job(
        name="surveys",
        every_seconds=settings.survey_invite_seconds,
        lock=surveying.LOCK,
        round=round_,
    )


async def _jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    # A job holds a session advisory lock across its transactions: behind a transaction
    # pooler its connection must be a direct one (a small pool of its own).
    pooled = _behind_pooler(app)
    pool = await db.create_pool(app[DIRECT_URL], min_size=0, max_size=2) if pooled else app[POOL]
    jobs = [*background_jobs(app[SETTINGS]), survey_job(app[SETTINGS], app[OFFERS])]
    runner = periodic.Runner(pool, jobs, clock_=app[CLOCK])
    runner.start()
    try:
        yield
    finally:
        await runner.stop()
        if pooled:
            await pool.close()


async def _delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """The VAPID key, the Web Push sender, this process's outbox worker and pass pusher."""
    settings = app[SETTINGS]
    async with wiring.running(
        app[POOL],
        settings,
        app[listen.LISTENER],
        clock_=app[CLOCK],
        outbox_worker=settings.outbox_worker,
        pass_pusher=settings.pass_pusher,
    ) as delivery:
        app[VAPID] = delivery.key
        app[WORKER] = delivery.worker
        app[passpush.PASS_PUSHER] = delivery.pusher
        app[googlepush.GOOGLE_PUSHER] = delivery.google
        yield
