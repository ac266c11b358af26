"""The Idempotency-Key of writes at the till (redemptions, purchases).

The header is read and checked here; the request's fingerprint is a digest of the
fields the handler names, so a retry is recognised and a reused key with another body
is refused (the domain compares fingerprints and raises, the error table answers 422);
a replay answers the first result again with ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from gateway.http import api, errors

HEADER = "Idempotency-Key"

# The OpenAPI parameter of every endpoint that needs the header.
PARAMETER: Mapping[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 200},
}


def key(request: web.Request) -> str:
    """The request's Idempotency-Key: 1 to 200 printable ASCII characters."""
    value = request.headers.get(HEADER, "")
    if not value:
        raise errors.BadRequest(
            "send an Idempotency-Key header (a unique string per redemption attempt), so a "
            "retry after a timeout cannot redeem twice",
            code="idempotency_key_missing",
        )
    if len(value) > 200 or not value.isascii() or not value.isprintable():
        raise errors.BadRequest(
            "the Idempotency-Key must be 1 to 200 printable ASCII characters",
            code="idempotency_key_invalid",
        )
    return value


def _text(part: object) -> str:
    if part is None:
        return ""
    if isinstance(part, Decimal):
        # 5, 5.0 and 5.00 are one amount.
        return format(part.normalize(), "f")
    return str(part)


def request_hash(*parts: object) -> bytes:
    """What makes two requests with one key the same request: a digest of ``parts``, in order."""
    text = "\x1f".join(_text(p) for p in parts)
    return hashlib.sha256(text.encode()).digest()


def answer(body: Any, *, created: bool) -> web.Response:
    """201 with the result; answering an earlier request again says so."""
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return api.json(body, status=201, headers=headers)
