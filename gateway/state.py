"""Typed keys for what the app and its requests carry."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from gateway import (
    auth,
    clock,
    geoindex,
    inbox,
    offering,
    outbox,
    pings,
    ratelimit,
    routing,
    settings,
    webpush,
)
from wallet import passes as wallet_passes

SETTINGS = web.AppKey("settings", settings.Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DB_URL = web.AppKey("db_url", str)
VERIFIER = web.AppKey("verifier", auth.TokenVerifier)
CLOCK = web.AppKey("clock", clock.Clock)
ENDPOINTS = web.AppKey("endpoints", dict[routing.Handler, routing.Endpoint])
GEO_INDEX = web.AppKey("geo_index", geoindex.IndexHolder)
PINGS = web.AppKey("pings", pings.PingService)
PING_LIMITER = web.AppKey("ping_limiter", ratelimit.TokenBuckets)
OFFERS = web.AppKey("offers", offering.OfferBooks)
REDEEM_LIMITER = web.AppKey("redeem_limiter", ratelimit.TokenBuckets)
INBOX_HUB = web.AppKey("inbox_hub", inbox.Hub)
VAPID = web.AppKey("vapid", webpush.VapidKey)
WORKER = web.AppKey("worker", outbox.Worker)
SIGNERS = web.AppKey("signers", dict[int, tuple[object, wallet_passes.Signer]])
