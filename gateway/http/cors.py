"""CORS for merchants' web pages: preflights and Access-Control headers on the shopper and
app endpoints, for the origins each merchant allows (gateway/accounts/origins.py).

The gateway's middleware (middleware.py) calls this only for a request with an ``Origin``
header; any other costs one header lookup. Preflights carry no token, so they are
answered for an origin that any merchant allows, from memory; an actual
answer carries the headers only when the token's merchant allows the origin (a shopper or
app token; staff tokens get none), or, with no verified token yet (a 401, the public VAPID
key), when any merchant does. Error answers carry them too, so the page can read them.
Tokens travel as ``Authorization: Bearer``, never as cookies: no Allow-Credentials.
"""

from __future__ import annotations

import functools

from aiohttp import web

from gateway.accounts.auth import Role
from gateway.accounts.origins import ORIGINS
from gateway.http import api
from gateway.http.routing import MOUNTED, Endpoint

# What a browser may send, and read back, on the endpoints below.
ALLOW_HEADERS = "authorization, content-type, idempotency-key, x-request-id"
EXPOSE_HEADERS = "retry-after, x-request-id, content-disposition"
# How long a browser may reuse a preflight (Chromium caps it at 7200 s). A removed origin
# may still send requests that long, but never reads their answers.
MAX_AGE_SECONDS = 600

BROWSER_ROLES = frozenset({Role.SHOPPER, Role.APP})
# Endpoints without a token that a shopper's page calls.
PUBLIC_PATHS = frozenset({"/v1/push/vapid-public-key", "/openapi.json"})


def for_browsers(endpoint: Endpoint) -> bool:
    """Whether a page on an allowed origin may call ``endpoint``: a shopper or app one."""
    if endpoint.roles is None:
        return endpoint.path in PUBLIC_PATHS
    return not endpoint.roles.isdisjoint(BROWSER_ROLES)


async def cross_origin(
    request: web.Request, handler: api.Handler, origin: str
) -> web.StreamResponse:
    """Answer a request that carries an ``Origin`` (the gateway's middleware calls this)."""
    merchants = request.app[ORIGINS].merchants(origin)
    if not merchants:
        return await handler(request)
    if request.method == "OPTIONS":
        wanted = request.headers.get("Access-Control-Request-Method")
        if wanted:
            preflight = await _preflight(request, origin, wanted)
            if preflight is not None:
                return preflight
        return await handler(request)
    # A streamed answer (the live feed) sends its headers before the handler returns.
    hook: api.StreamHook = functools.partial(_decorate, request, origin, merchants)
    request[api.BEFORE_STREAM] = hook
    response = await handler(request)
    if not response.prepared:
        _decorate(request, origin, merchants, response)
    return response


async def _preflight(request: web.Request, origin: str, method: str) -> web.Response | None:
    """The preflight's answer, or None when the asked-for route is not for browsers."""
    match = await request.app.router.resolve(request.clone(method=method.upper()))
    endpoint = request.app[MOUNTED].get(match.route.handler)
    if endpoint is None or not for_browsers(endpoint):
        return None
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": endpoint.method,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )


def _decorate(
    request: web.Request, origin: str, merchants: frozenset[int], response: web.StreamResponse
) -> None:
    endpoint = request.app[MOUNTED].get(request.match_info.route.handler)
    if endpoint is None or not for_browsers(endpoint):
        return
    principal = request.get(api.PRINCIPAL)
    if principal is not None and (
        principal.role not in BROWSER_ROLES or principal.merchant_id not in merchants
    ):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    response.headers.add("Vary", "Origin")
