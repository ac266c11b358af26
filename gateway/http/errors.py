"""HTTP-facing errors. Every one renders as the documented JSON shape:

``{"error": {"code": "...", "message": "...", "fields": {...}, "request_id": "..."}}``

plus ``"details": {...}`` when the error has facts to give beyond its message (a 410
coupon_expired gives ``expired_at``).

ApiError
├── BadRequest (400 bad_request)
│   └── InvalidJson (400 invalid_json)
├── Unauthorized (401 unauthorized)
├── Forbidden (403 forbidden)
├── NotFound (404 not_found)
├── Conflict (409 conflict)
├── Gone (410 gone)
├── PayloadTooLarge (413 payload_too_large)
├── UnsupportedMediaType (415 unsupported_media_type)
├── ValidationFailed (422 validation_failed)
├── RateLimited (429 rate_limited)
└── Unavailable (503 unavailable)

Domain errors (geo, offers, wallet, and a refused Web Push subscription) become one of
these through one table, ``DOMAIN``: the middleware translates any of them with
``from_domain``, so handlers let them rise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from gateway.accounts import errors as account_errors
from gateway.delivery import webpush
from geo import errors as geo_errors
from offers import errors as offer_errors
from wallet import errors as wallet_errors


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
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        self.details = dict(details or {})


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
    code: str,
    message: str,
    *,
    fields: Mapping[str, str] | None = None,
    request_id: str = "-",
    details: Mapping[str, str] | None = None,
) -> dict[str, object]:
    error: dict[str, object] = {
        "code": code,
        "message": message,
        "fields": dict(fields or {}),
        "request_id": request_id,
    }
    if details:
        error["details"] = dict(details)
    return {"error": error}


# -- domain errors ----------------------------------------------------------------------


def _status(kind: type[ApiError]) -> Callable[[Any], ApiError]:
    """The answer that keeps the domain error's own code and message."""
    return lambda exc: kind(exc.message, code=exc.code)


def _geometry(exc: geo_errors.GeometryInvalid) -> ApiError:
    fields: dict[str, str] = {}
    for problem in exc.problems:
        key = problem.path or "(body)"
        fields[key] = f"{fields[key]}; {problem.message}" if key in fields else problem.message
    first = exc.problems[0].message if exc.problems else "invalid GeoJSON"
    return ValidationFailed(f"the geofence is invalid: {first}", fields=fields)


def _too_far(exc: geo_errors.FenceTooFar) -> ApiError:
    fields = {p.path: p.message for p in exc.problems}
    return ValidationFailed(exc.message, code=exc.code, fields=fields)


def _unknown_place(exc: offer_errors.UnknownPlace) -> ApiError:
    return ValidationFailed(exc.message, fields={exc.field: exc.message})


def _with_fields(kind: type[ApiError], code: str | None = None) -> Callable[[Any], ApiError]:
    """The answer that keeps the domain error's message and the inputs it names."""
    return lambda exc: kind(exc.message, code=code, fields=exc.fields)


def _expired(exc: offer_errors.CouponExpired) -> ApiError:
    expired_at = exc.expired_at.isoformat().replace("+00:00", "Z")
    return Gone(exc.message, code=exc.code, details={"expired_at": expired_at})


def _subscription(exc: webpush.SubscriptionInvalid) -> ApiError:
    return ValidationFailed(str(exc), fields={exc.field: str(exc)})


# The HTTP answer of each domain error, looked up along its class's bases: an error
# not named here answers as its package's base does.
DOMAIN: dict[type[Exception], Callable[[Any], ApiError]] = {
    geo_errors.GeometryInvalid: _geometry,
    geo_errors.FenceTooFar: _too_far,
    offer_errors.UnknownPlace: _unknown_place,
    offer_errors.UnknownCode: _status(NotFound),
    offer_errors.CodeMistyped: lambda exc: ValidationFailed(
        exc.message, code=exc.code, fields={"code": exc.message}
    ),
    offer_errors.WrongStore: _status(Forbidden),
    offer_errors.CouponExpired: _expired,
    offer_errors.AlreadyRedeemed: _status(Conflict),
    offer_errors.RedemptionBudgetExhausted: _status(Conflict),
    offer_errors.IdempotencyKeyReused: _status(ValidationFailed),
    offer_errors.IdempotencyKeyRace: _status(Conflict),
    offer_errors.AlreadyVoided: _status(Conflict),
    offer_errors.VoidWindowClosed: _status(Conflict),
    offer_errors.UnknownReward: _status(NotFound),
    offer_errors.RewardNotForTier: _status(Forbidden),
    offer_errors.RewardLimitReached: _status(Conflict),
    offer_errors.RewardOutOfStock: _status(Conflict),
    offer_errors.StockBelowIssued: lambda exc: ValidationFailed(
        exc.message, code=exc.code, fields={"stock": exc.message}
    ),
    offer_errors.ReferralCodeRefused: lambda exc: ValidationFailed(
        exc.message, code=exc.code, fields={"referral_code": exc.message}
    ),
    offer_errors.AnswerInvalid: _with_fields(ValidationFailed),
    offer_errors.AlreadyAnswered: _status(Conflict),
    offer_errors.NotInvited: _status(Conflict),
    offer_errors.OfferTaken: lambda exc: Conflict(
        exc.message, code=exc.code, fields={"offer_id": exc.message}
    ),
    offer_errors.OffersError: _status(BadRequest),
    wallet_errors.UnknownShopper: _status(NotFound),
    wallet_errors.InsufficientPoints: _status(Conflict),
    wallet_errors.ActionLimitReached: _status(Conflict),
    wallet_errors.IdempotencyKeyReused: _status(ValidationFailed),
    wallet_errors.GoogleWalletNotConfigured: _status(Conflict),
    wallet_errors.ServiceAccountInvalid: _status(ValidationFailed),
    wallet_errors.CouponNotLive: _status(Conflict),
    wallet_errors.UnknownMember: _status(NotFound),
    wallet_errors.AlreadyVoided: _status(Conflict),
    wallet_errors.VoidWindowClosed: _status(Conflict),
    wallet_errors.CallbackUnsigned: _status(Unauthorized),
    wallet_errors.SignatureInvalid: _status(Unauthorized),
    wallet_errors.SigningKeyExpired: _status(Unauthorized),
    wallet_errors.RootKeysUnavailable: lambda exc: Unavailable(
        exc.message, code=exc.code, headers={"Retry-After": "60"}
    ),
    wallet_errors.WalletError: _status(BadRequest),
    webpush.SubscriptionInvalid: _subscription,
    account_errors.InvalidKeyRequest: _with_fields(ValidationFailed),
    account_errors.UnknownMerchant: _with_fields(NotFound),
    account_errors.EmailTaken: _with_fields(Conflict, "email_taken"),
    # Only when three attempts at one ping keep racing: the app's next resend gets the answer.
    geo_errors.DuplicatePing: _status(Conflict),
    account_errors.InvalidOrigin: _with_fields(ValidationFailed),
}

# What the middleware catches and translates.
DOMAIN_ERRORS = (
    account_errors.AccountsError,
    geo_errors.GeoError,
    offer_errors.OffersError,
    wallet_errors.WalletError,
    webpush.SubscriptionInvalid,
)


def from_domain(exc: Exception) -> ApiError:
    """The HTTP error a domain error answers with."""
    for kind in type(exc).__mro__:
        translate = DOMAIN.get(kind)
        if translate is not None:
            return translate(exc)
    return BadRequest(str(exc))
