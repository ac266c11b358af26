"""Errors of the offers domain. Each says what went wrong;
the HTTP edge (gateway/http/errors.py) decides the status.

OffersError
├── UnknownPlace            a geofence or store named by an offer does not exist
├── UnknownCode             no such coupon code
├── CodeMistyped            the code's check symbol says it was mistyped
├── WrongStore              the coupon is not valid at this store
├── CouponExpired           the coupon's validity has ended
├── AlreadyRedeemed         single use: someone redeemed it first
├── RedemptionBudgetExhausted  the offer's redemption budget is used up
├── IdempotencyKeyReused    the key was used for a different request
├── IdempotencyKeyRace      a request with the same key is in flight (retry)
├── AlreadyVoided           the redemption was already voided
├── VoidWindowClosed        too late to void
└── OfferTaken              another journey already sends this offer
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


class OffersError(Exception):
    code = "offers_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownPlace(OffersError):
    code = "unknown_place"

    def __init__(self, field: str, ids: Sequence[int]) -> None:
        super().__init__(f"no such {field.removesuffix('_ids')}: {', '.join(map(str, ids))}")
        self.field = field
        self.ids = tuple(ids)


class UnknownCode(OffersError):
    code = "unknown_code"

    def __init__(self) -> None:
        super().__init__("no coupon has this code")


class CodeMistyped(OffersError):
    code = "code_mistyped"

    def __init__(self) -> None:
        super().__init__(
            "this code has a typo (its check symbol does not match); "
            "check it against the shopper's screen"
        )


class WrongStore(OffersError):
    code = "wrong_store"

    def __init__(self) -> None:
        super().__init__("this coupon is not valid at this store")


class CouponExpired(OffersError):
    code = "coupon_expired"

    def __init__(self, expired_at: dt.datetime, now: dt.datetime) -> None:
        expired_at = expired_at.astimezone(dt.UTC)
        super().__init__(
            f"this coupon expired at {expired_at:%Y-%m-%d %H:%M} UTC, {_ago(now - expired_at)}"
        )
        self.expired_at = expired_at


class AlreadyRedeemed(OffersError):
    code = "already_redeemed"

    def __init__(self) -> None:
        super().__init__("this coupon has already been redeemed")


class RedemptionBudgetExhausted(OffersError):
    code = "budget_exhausted"

    def __init__(self) -> None:
        super().__init__("the offer's redemption budget is used up")


class IdempotencyKeyReused(OffersError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class IdempotencyKeyRace(OffersError):
    code = "idempotency_key_in_flight"

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is being processed; retry")


class AlreadyVoided(OffersError):
    code = "already_voided"

    def __init__(self) -> None:
        super().__init__("this redemption was already voided")


class VoidWindowClosed(OffersError):
    code = "void_window_closed"

    def __init__(self, minutes: int) -> None:
        super().__init__(f"a redemption can only be voided within {minutes} minutes")


def _ago(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 1:
        return "moments ago"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hours ago"
    return f"{hours // 24} days ago"


class OfferTaken(OffersError):
    code = "offer_taken"

    def __init__(self) -> None:
        super().__init__(
            "another journey already sends this offer; a journey's offer is its own, so that "
            "the offer's report is the journey's"
        )
