"""The middleware: the request's metrics, CORS, request ids, JSON errors, body limits and
bearer-token auth by role, in one layer.

One middleware instead of three (metrics, CORS, the rest): each aiohttp middleware costs a
bound call and a coroutine frame on every request, and these always run together. The
metrics' timing wraps everything, so it times the answer the client gets; CORS comes next,
so its headers go on error answers too.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import secrets
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway import db, logs, metrics
from gateway.accounts.auth import VERIFIER
from gateway.db import POOL
from gateway.http import api, cors, errors, instrument
from gateway.http.routing import MOUNTED
from gateway.settings import SETTINGS

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

# aiohttp raises these itself (no route, wrong method, body too big); we give
# them the same JSON shape as our own errors.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, str] | None = None,
) -> web.Response:
    body = errors.error_body(
        code, message, fields=fields, request_id=logs.request_id.get(), details=details
    )
    return api.json(body, status=status, headers=headers)


_RID_PREFIX = secrets.token_hex(4)
_rid_counter = itertools.count(1)


def _request_id(incoming: str) -> str:
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    # A random per-process prefix and a counter: unique, and no syscall per request.
    return f"{_RID_PREFIX}{next(_rid_counter):08x}"


def build(recorder: instrument.Recorder | None) -> Middleware:
    """The gateway's one middleware; with a recorder, it also times and counts requests."""

    @web.middleware
    async def gateway_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
        started = recorder.begin() if recorder is not None else 0.0
        status = 500
        try:
            origin = request.headers.get("Origin")
            if origin is None:  # not a browser's cross-origin call: by far the common case
                response = await _answer(request, handler)
            else:
                answer = functools.partial(_answer, handler=handler)
                response = await cors.cross_origin(request, answer, origin)
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect, passed through
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away; nginx's word for it
            raise
        finally:
            if recorder is not None:
                recorder.end(request, started, status)

    return gateway_middleware


async def _answer(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    """Request id, JSON errors, the body size limit and token auth."""
    rid = _request_id(request.headers.get("X-Request-Id", ""))
    token = logs.request_id.set(rid)
    try:
        try:
            response = await _authorised(request, handler)
        except errors.ApiError as exc:
            response = _api_error(exc)
        except errors.DOMAIN_ERRORS as exc:
            response = _api_error(errors.from_domain(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_error(request, exc)
        except Exception as exc:
            if isinstance(exc, ConnectionResetError) and _client_gone(request):
                # The app went away mid-request (phones on the move do): nobody is left
                # to answer, and it is no error of ours. aiohttp drops the connection
                # quietly when an answer cannot be written; 499 is what the access log shows.
                log.debug("client went away", extra={"path": request.path})
                response = web.Response(status=499)
            elif db.is_unavailable(exc):
                metrics.DB_UNAVAILABLE.inc()
                log.warning(
                    "database unavailable",
                    extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                response = _error_response(
                    503,
                    "unavailable",
                    "the database is unavailable; retry shortly",
                    headers={"Retry-After": "2"},
                )
            else:
                log.exception(
                    "unhandled error", extra={"path": request.path, "method": request.method}
                )
                response = _error_response(500, "internal", "internal error; quote the request id")
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        logs.request_id.reset(token)


def _api_error(exc: errors.ApiError) -> web.Response:
    if exc.status >= 500:
        log.warning("request failed", extra={"code": exc.code, "status": exc.status})
    return _error_response(
        exc.status,
        exc.code,
        exc.message,
        fields=exc.fields,
        headers=exc.headers,
        details=exc.details,
    )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = {
        404: f"no route for {request.path}",
        405: f"{request.method} is not allowed on {request.path}",
        413: "the body is larger than allowed",
    }.get(exc.status, exc.reason)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return _error_response(exc.status, code, message, headers=headers)


async def _authorised(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    endpoint = request.app[MOUNTED].get(request.match_info.route.handler)
    if endpoint is None:  # no route (aiohttp's own 404/405 handler), or a page (pages.py)
        return await handler(request)
    # Refuse a declared oversized body before reading a byte of it; chunked
    # bodies are cut off while reading (api.read_limited).
    settings = request.app[SETTINGS]
    limit = settings.max_import_bytes if endpoint.bulk_body else settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"the body is larger than the {limit} bytes allowed")
    if endpoint.roles is None:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header:
        raise errors.Unauthorized("send an API token as 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized("the Authorization header must be 'Bearer <token>'")
    verifier = request.app[VERIFIER]
    # A token seen before needs no coroutine: the common case, by far.
    principal = verifier.cached(token) or await verifier.verify(request.app[POOL], token)
    if principal is None:
        raise errors.Unauthorized("the token is unknown or revoked", code="invalid_token")
    if principal.role not in endpoint.roles:
        allowed = ", ".join(sorted(r.value for r in endpoint.roles))
        raise errors.Forbidden(
            f"{principal.role.a_token} cannot call this endpoint (allowed: {allowed})",
            code="wrong_role",
        )
    request[api.PRINCIPAL] = principal
    return await handler(request)
