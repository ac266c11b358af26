"""Middlewares: request ids, bearer-token auth by declared role, and JSON errors."""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp import web

from gateway import api, db, errors, logs, state

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


def _error_response(status: int, code: str, message: str, **kw: object) -> web.Response:
    fields = kw.get("fields")
    headers = kw.get("headers")
    return api.json(
        errors.error_body(
            code,
            message,
            fields=fields if isinstance(fields, dict) else None,
            request_id=logs.request_id.get(),
        ),
        status=status,
        headers=headers if isinstance(headers, dict) else None,
    )


@web.middleware
async def request_id_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
    token = logs.request_id.set(rid)
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        logs.request_id.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        if exc.status >= 500:
            log.warning("request failed", extra={"code": exc.code, "status": exc.status})
        return _error_response(
            exc.status, exc.code, exc.message, fields=exc.fields, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = {
            404: f"no route for {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the body is larger than the {request.app[state.SETTINGS].max_body_bytes} "
            "bytes allowed",
        }.get(exc.status, exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error_response(exc.status, code, message, headers=headers)
    except Exception as exc:
        if db.is_unavailable(exc):
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return _error_response(
                503,
                "unavailable",
                "the database is unavailable; retry shortly",
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return _error_response(500, "internal", "internal error; quote the request id")


@web.middleware
async def auth_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    endpoint = request.app[state.ENDPOINTS].get(request.match_info.route.handler)
    if endpoint is None or endpoint.roles is None:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise errors.Unauthorized("send an API token as 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("the Authorization header must be 'Bearer <token>'")
    verifier = request.app[state.VERIFIER]
    principal = await verifier.verify(request.app[state.POOL], token.strip())
    if principal is None:
        raise errors.Unauthorized("the token is unknown or revoked", code="invalid_token")
    if principal.role not in endpoint.roles:
        allowed = ", ".join(sorted(r.value for r in endpoint.roles))
        raise errors.Forbidden(
            f"a {principal.role.value} token cannot call this endpoint (allowed: {allowed})",
            code="wrong_role",
        )
    request[api.PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def body_limit_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    # Refuse a declared oversized body before reading a byte of it; chunked
    # bodies are still capped by aiohttp's client_max_size while reading.
    limit = request.app[state.SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"the body is larger than the {limit} bytes allowed")
    return await handler(request)
