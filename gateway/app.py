"""The aiohttp application factory: the one place where the packages are wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import api, auth, clock, db, middleware, state
from gateway.handlers import system, tenancy
from gateway.settings import Settings

log = logging.getLogger(__name__)


def all_endpoints() -> list[api.Endpoint]:
    return [*system.ENDPOINTS, *tenancy.ENDPOINTS]


def create_app(
    settings: Settings, *, db_url: str | None = None, clock_: clock.Clock | None = None
) -> web.Application:
    """Build the app. ``db_url`` overrides the settings (tests, workers given a resolved URL)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            middleware.request_id_middleware,
            middleware.error_middleware,
            middleware.body_limit_middleware,
            middleware.auth_middleware,
        ],
    )
    app[state.SETTINGS] = settings
    app[state.DB_URL] = db_url or db.resolve_url(settings)
    app[state.CLOCK] = clock_ or clock.SystemClock()
    app[state.VERIFIER] = auth.TokenVerifier(ttl=settings.token_cache_seconds)
    endpoints: dict[api.Handler, api.Endpoint] = {}
    for ep in all_endpoints():
        if ep.handler in endpoints:
            raise RuntimeError(f"handler {ep.operation_id} is mounted twice")
        endpoints[ep.handler] = ep
        app.router.add_route(ep.method, ep.path, ep.handler, name=ep.operation_id)
    app[state.ENDPOINTS] = endpoints
    app.cleanup_ctx.append(_pool_ctx)
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
