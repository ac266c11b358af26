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
├── RewardRefused           a reward the shopper cannot buy now
│   ├── UnknownReward           no such reward in the catalog (or not on sale)
│   ├── RewardNotForTier        the reward is for other tiers
│   ├── RewardLimitReached      the shopper bought it as often as allowed
│   ├── RewardOutOfStock        its stock (or gift-card codes) ran out
│   └── StockBelowIssued        a stock lower than what was already issued
├── ReferralCodeRefused     a referral code at enrolment that cannot refer this shopper
├── AnswerInvalid           a survey answer does not fit the survey's questions
├── AlreadyAnswered         the shopper answered this survey already
├── NotInvited              no live invitation to this survey for the shopper
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


class RewardRefused(OffersError):
    code = "reward_refused"


class UnknownReward(RewardRefused):
    code = "unknown_reward"

    def __init__(self) -> None:
        super().__init__("no such reward on sale")


class RewardNotForTier(RewardRefused):
    code = "reward_not_for_tier"

    def __init__(self, tiers: Sequence[str]) -> None:
        super().__init__(f"this reward is for the tiers {', '.join(tiers)}")


class RewardLimitReached(RewardRefused):
    code = "reward_limit_reached"

    def __init__(self, limit: int) -> None:
        super().__init__(f"a shopper can buy this reward at most {limit} time(s)")


class RewardOutOfStock(RewardRefused):
    code = "reward_out_of_stock"

    def __init__(self) -> None:
        super().__init__("this reward is out of stock")


class StockBelowIssued(RewardRefused):
    code = "stock_below_issued"

    def __init__(self, issued: int) -> None:
        super().__init__(f"{issued} were already issued: the stock cannot be lower")
        self.issued = issued


class AnswerInvalid(OffersError):
    code = "validation_failed"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("the answers do not fit the survey's questions")
        self.fields = fields


class AlreadyAnswered(OffersError):
    code = "already_answered"

    def __init__(self) -> None:
        super().__init__("this survey has already been answered by this shopper")


class NotInvited(OffersError):
    code = "not_invited"

    def __init__(self) -> None:
        super().__init__(
            "this shopper has no live invitation to this survey (it comes after a visit or "
            "a redemption, and lasts as long as its coupon's validity)"
        )


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


class ReferralCodeRefused(OffersError):
    """An enrolment's referral code: unknown, mistyped, or the shopper's own."""

    code = "referral_code_refused"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class OfferTaken(OffersError):
    code = "offer_taken"

    def __init__(self) -> None:
        super().__init__(
            "another journey already sends this offer; a journey's offer is its own, so that "
            "the offer's report is the journey's"
        )
