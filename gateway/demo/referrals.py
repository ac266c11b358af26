"""The demo's referral chain: the morning's first shoppers each enrol with the code of
the one before (Shopper 1 invites Shopper 2, who invites Shopper 3, ...) and buy a
coffee as they join, so both sides earn the program's referral points. (Before the
walk, so no offer decision is converted: the seeded morning plays as without them.) One more
account, made on the phone of the chain's last shopper, enrols with that shopper's code
and buys: the referral is refused (a shared device). The summary and the report show
the counts from ``GET /v1/reports/referrals``."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.demo import localpush

# Shoppers 1..CHAIN form the chain.
CHAIN = 5


class _Walker(Protocol):
    id: str
    token: str
    store: int
    subscriber: localpush.Subscriber | None


class _Store(Protocol):
    id: str


class _Demo(Protocol):
    tokens: dict[str, str]

    @property
    def walkers(self) -> list[Any]: ...

    @property
    def stores(self) -> list[Any]: ...

    async def call(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        idempotency: bool = False,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]: ...


def invited(i: int) -> bool:
    """Whether the i-th shopper (from 0) enrols with the previous one's code."""
    return 0 < i < CHAIN


async def code_of(demo: _Demo, token: str) -> str:
    _, mine = await demo.call("GET", "/v1/me/referral", token)
    return str(mine["code"])


async def first_purchase(demo: _Demo, shopper_id: str, store_id: str) -> int:
    """The invited shopper's first coffee, which qualifies the referral; 1 purchase."""
    await demo.call(
        "POST",
        "/v1/purchases",
        demo.tokens["pos"],
        {"shopper_id": shopper_id, "store_id": store_id, "amount": 3.8},
        idempotency=True,
    )
    return 1


async def same_phone(demo: _Demo, push: localpush.PushService, vapid_key: str) -> int:
    """A second account on the last chain shopper's phone enrols with that shopper's code
    and buys; the number of purchases made (0 with too few shoppers for a chain)."""
    if len(demo.walkers) < CHAIN:
        return 0
    referrer = demo.walkers[CHAIN - 1]
    if referrer.subscriber is None:
        referrer.subscriber = push.subscribe(vapid_key)
        await demo.call(
            "POST",
            "/v1/push-subscriptions",
            referrer.token,
            referrer.subscriber.subscription_info(),
        )
    code = await code_of(demo, referrer.token)
    _, made = await demo.call(
        "POST",
        "/v1/shoppers",
        demo.tokens["app"],
        {"name": "A second account", "marketing_consent": False, "referral_code": code},
    )
    # The same browser on the same phone: the same push endpoint.
    await demo.call(
        "POST", "/v1/push-subscriptions", made["token"], referrer.subscriber.subscription_info()
    )
    return await first_purchase(demo, made["id"], demo.stores[referrer.store].id)


async def report(demo: _Demo) -> dict[str, Any]:
    _, counts = await demo.call("GET", "/v1/reports/referrals", demo.tokens["reviewer"])
    return dict(counts)


def words(counts: dict[str, Any]) -> str:
    """The report's counts in one line."""
    if not counts:
        return "none"
    refused = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts["refused"].items() if v)
    return (
        f"invitations used {counts['invitations_used']}, qualified {counts['qualified']}, "
        f"rewarded {counts['rewarded']}, refused {counts['refused_total']}"
        + (f" ({refused})" if refused else "")
        + f"; points paid {counts['points_paid']}"
    )
