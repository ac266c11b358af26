"""Errors of the wallet domain. Each says what went wrong;
the HTTP edge (gateway/http/errors.py) decides the status.

WalletError
├── UnknownShopper          no such shopper in this program
├── InsufficientPoints      a spend larger than the balance
├── ActionLimitReached      the action's award limit is used up for now
├── IdempotencyKeyReused    the key was used for a different request
├── GoogleWalletNotConfigured  the merchant has no Google Wallet issuer
├── ServiceAccountInvalid   a service-account file Google would not accept
├── CouponNotLive           a redeemed or expired coupon asked for as a new pass
├── UnknownMember           no card of this program carries that member barcode
├── AlreadyVoided           the points payment was already voided
├── VoidWindowClosed        too late to void the points payment
└── CallbackRefused         a Google Wallet callback we do not believe or cannot use
    ├── CallbackMalformed       not an ECv2SigningOnly message
    ├── CallbackUnsigned        a signature or the intermediate signing key is missing
    ├── SignatureInvalid        a signature does not verify (root or intermediate key)
    ├── SigningKeyExpired       the intermediate signing key has expired
    ├── CallbackExpired         the signed message's expTimeMillis has passed
    └── RootKeysUnavailable     Google's root signing keys could not be fetched
"""

from __future__ import annotations


class WalletError(Exception):
    code = "wallet_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownShopper(WalletError):
    code = "unknown_shopper"

    def __init__(self) -> None:
        super().__init__("no such shopper in this program")


class InsufficientPoints(WalletError):
    code = "insufficient_points"

    def __init__(self, balance: int) -> None:
        super().__init__(f"the balance is {balance} points")


class ActionLimitReached(WalletError):
    code = "action_limit_reached"

    def __init__(self, action: str, limit: int, days: int) -> None:
        super().__init__(f"{action} earns points at most {limit} time(s) in {days} days")


class IdempotencyKeyReused(WalletError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class GoogleWalletNotConfigured(WalletError):
    code = "google_wallet_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "this program has no Google Wallet issuer yet; an operator sets one with "
            "`gateway wallet google-configure`"
        )


class ServiceAccountInvalid(WalletError):
    code = "service_account_invalid"


class CouponNotLive(WalletError):
    code = "coupon_not_live"

    def __init__(self, state: str) -> None:
        super().__init__(f"this coupon is {state}; only live coupons can be saved to a wallet")


class UnknownMember(WalletError):
    code = "unknown_member"

    def __init__(self) -> None:
        super().__init__("no member card of this program carries that barcode")


class AlreadyVoided(WalletError):
    code = "already_voided"

    def __init__(self) -> None:
        super().__init__("this payment was already voided")


class VoidWindowClosed(WalletError):
    code = "void_window_closed"

    def __init__(self, minutes: int) -> None:
        super().__init__(f"a payment can only be voided within {minutes} minutes")


class CallbackRefused(WalletError):
    """A Google Wallet callback that changes nothing."""

    code = "callback_refused"


class CallbackMalformed(CallbackRefused):
    code = "callback_malformed"


class CallbackUnsigned(CallbackRefused):
    code = "callback_unsigned"


class SignatureInvalid(CallbackRefused):
    code = "signature_invalid"


class SigningKeyExpired(CallbackRefused):
    code = "signing_key_expired"


class CallbackExpired(CallbackRefused):
    code = "callback_expired"


class RootKeysUnavailable(CallbackRefused):
    code = "root_keys_unavailable"
