"""HTTP-facing errors. Every one renders as the documented JSON shape:

``{"error": {"code": "...", "message": "...", "fields": {...}, "request_id": "..."}}``

ApiError
├── BadRequest (400 bad_request)
│   └── InvalidJson (400 invalid_json)
├── Unauthorized (401 unauthorized)
├── Forbidden (403 forbidden)
├── NotFound (404 not_found)
├── MethodNotAllowed (405 method_not_allowed)
├── Conflict (409 conflict)
├── Gone (410 gone)
├── PayloadTooLarge (413 payload_too_large)
├── UnsupportedMediaType (415 unsupported_media_type)
├── ValidationFailed (422 validation_failed)
├── RateLimited (429 rate_limited)
└── Unavailable (503 unavailable)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class ApiError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status = 400
    default_code = "bad_request"


class InvalidJson(BadRequest):
    default_code = "invalid_json"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    default_code = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    default_code = "conflict"


class Gone(ApiError):
    status = 410
    default_code = "gone"


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    default_code = "unsupported_media_type"


class ValidationFailed(ApiError):
    status = 422
    default_code = "validation_failed"


class RateLimited(ApiError):
    status = 429
    default_code = "rate_limited"


class Unavailable(ApiError):
    status = 503
    default_code = "unavailable"


def error_body(
    code: str, message: str, *, fields: Mapping[str, str] | None = None, request_id: str = "-"
) -> dict[str, object]:
    return {
        "error": {
            "code": code,
            "message": message,
            "fields": dict(fields or {}),
            "request_id": request_id,
        }
    }
