"""The aiohttp application factory: the one place where the packages are wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import (
    auth,
    clock,
    db,
    geoindex,
    inbox,
    listen,
    middleware,
    offering,
    outbox,
    passpush,
    pinglog,
    pings,
    ratelimit,
    retention,
    routing,
    spool,
    state,
    stats,
    upkeep,
    webpush,
)
from gateway.handlers import delivery as delivery_handlers
from gateway.handlers import loyalty as loyalty_handlers
from gateway.handlers import offers as offer_handlers
from gateway.handlers import passes as pass_handlers
from gateway.handlers import passkit, places, reports, system, tenancy
from gateway.handlers import pings as ping_handlers
from gateway.settings import Settings
from geo.models import FenceConfig, SpoofingConfig

log = logging.getLogger(__name__)


def all_endpoints() -> list[routing.Endpoint]:
    return [
        *system.ENDPOINTS,
        *tenancy.ENDPOINTS,
        *places.ENDPOINTS,
        *ping_handlers.ENDPOINTS,
        *offer_handlers.ENDPOINTS,
        *reports.ENDPOINTS,
        *delivery_handlers.ENDPOINTS,
        *loyalty_handlers.ENDPOINTS,
        *pass_handlers.ENDPOINTS,
        *passkit.ENDPOINTS,
    ]


def create_app(
    settings: Settings, *, db_url: str | None = None, clock_: clock.Clock | None = None
) -> web.Application:
    """Build the app. ``db_url`` overrides the settings (tests, workers given a resolved URL)."""
    app = web.Application(
        # Per-endpoint limits are enforced while reading (api.read_limited); this
        # is only aiohttp's own ceiling, the largest of them.
        client_max_size=settings.max_import_bytes,
        middlewares=[middleware.gateway_middleware],
    )
    app[state.SETTINGS] = settings
    app[state.DB_URL] = db_url or db.resolve_url(settings)
    app[state.CLOCK] = clock_ or clock.SystemClock()
    app[state.VERIFIER] = auth.TokenVerifier(ttl=settings.token_cache_seconds)
    log_ = pinglog.PingLog(
        mode=settings.ping_log,
        spool_dir=spool.directory(settings.data_dir, db.describe(app[state.DB_URL])),
        flush_seconds=settings.ping_log_flush_seconds,
    )
    app[state.INBOX_HUB] = inbox.Hub()
    app[state.SIGNERS] = {}
    app[state.OFFERS] = offering.OfferBooks(max_delay_seconds=settings.offer_max_delay_seconds)
    app[state.GEO_INDEX] = geoindex.IndexHolder(poll_seconds=settings.index_poll_seconds)
    app[state.PINGS] = pings.PingService(
        fence_config=FenceConfig(
            dwell_seconds=settings.dwell_seconds, max_accuracy_m=settings.max_accuracy_m
        ),
        spoof_config=SpoofingConfig(
            max_speed_mps=settings.max_speed_mps, max_age_s=settings.max_ping_age_seconds
        ),
        log=log_,
        offers=app[state.OFFERS],
    )
    # A shopper's key and geofence state come from the database in one read.
    app[state.VERIFIER].on_shopper_row = app[state.PINGS].prime
    app[state.PING_LIMITER] = ratelimit.TokenBuckets(
        rate=settings.ping_rate, burst=settings.ping_burst
    )
    app[state.REDEEM_LIMITER] = ratelimit.TokenBuckets(
        rate=settings.redeem_rate, burst=settings.redeem_burst
    )
    endpoints: dict[routing.Handler, routing.Endpoint] = {}
    for ep in all_endpoints():
        if ep.handler in endpoints:
            raise RuntimeError(f"handler {ep.operation_id} is mounted twice")
        endpoints[ep.handler] = ep
        app.router.add_route(ep.method, ep.path, ep.handler, name=ep.operation_id)
    app[state.ENDPOINTS] = endpoints
    app.cleanup_ctx.append(_pool_ctx)
    app.cleanup_ctx.append(_geo_ctx)
    app.cleanup_ctx.append(_delivery_ctx)
    return app


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[state.SETTINGS]
    url = app[state.DB_URL]
    log.info("connecting to database", extra={"database": db.describe(url)})
    pool = await db.create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    app[state.POOL] = pool
    try:
        yield
    finally:
        await pool.close()


async def _geo_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = app[state.POOL]
    holder = app[state.GEO_INDEX]
    listener = listen.Listener(app[state.DB_URL])
    holder.attach(listener)
    app[state.PINGS].attach(listener)
    app[state.VERIFIER].attach(listener)
    app[state.OFFERS].attach(listener)
    app[state.INBOX_HUB].attach(listener)
    app[LISTENER] = listener
    await listener.start(app[state.SETTINGS].index_poll_seconds)
    await holder.start(pool)
    ping_log = app[state.PINGS].log
    # Its own connection: log batches never wait for a request's, nor requests for them.
    log_pool = await db.create_pool(app[state.DB_URL], min_size=1, max_size=1)
    ping_log.start(log_pool)
    settings = app[state.SETTINGS]
    purger = asyncio.create_task(
        retention.run_forever(
            pool, retention_days=settings.ping_retention_days, clock_=app[state.CLOCK]
        ),
        name="ping-retention",
    )
    compactor = asyncio.create_task(
        stats.run_forever(pool, every_seconds=settings.stats_compact_seconds),
        name="stats-compaction",
    )
    upkeeper = asyncio.create_task(
        upkeep.run_forever(
            pool, clock_=app[state.CLOCK], every_seconds=settings.wallet_upkeep_seconds
        ),
        name="wallet-upkeep",
    )
    try:
        yield
    finally:
        for task in (purger, compactor, upkeeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await ping_log.stop()
        await log_pool.close()
        await holder.stop()
        await listener.close()


LISTENER = web.AppKey("listener", listen.Listener)
PASS_PUSHER = web.AppKey("pass_pusher", passpush.PassPusher)


async def _delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """The VAPID key, the Web Push sender and this process's outbox worker."""
    settings = app[state.SETTINGS]
    pool = app[state.POOL]
    configured = settings.vapid_private_key.reveal() if settings.vapid_private_key else None
    async with db.acquire(pool) as conn:
        key = await webpush.load_key(conn, configured)
    app[state.VAPID] = key
    sender = webpush.Sender(key, subject=settings.vapid_subject)
    await sender.start()
    worker = outbox.Worker(
        pool,
        sender=sender,
        public_url=settings.base_url,
        clock_=app[state.CLOCK],
        lease_seconds=settings.outbox_lease_seconds,
    )
    app[state.WORKER] = worker
    if settings.outbox_worker:
        await worker.attach(app[LISTENER])
        worker.start()
    pusher = passpush.PassPusher(pool, base_url=settings.apns_url, ca_file=settings.apns_ca_file)
    app[PASS_PUSHER] = pusher
    if settings.pass_pusher:
        pusher.start()
    try:
        yield
    finally:
        await pusher.stop()
        await worker.stop()
        await sender.close()
