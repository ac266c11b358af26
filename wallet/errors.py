"""Errors of the wallet domain; the gateway maps each to its HTTP answer.

WalletError
├── UnknownShopper          no such shopper in this program (404)
├── InsufficientPoints      a spend larger than the balance (409)
├── ActionLimitReached      the action's award limit is used up for now (409)
└── IdempotencyKeyReused    the key was used for a different request (422)
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
