"""Two-sided referrals: each shopper's shareable code, the program's referral rules, and
the settlement of a referral when the referred shopper qualifies.

The fraud limits are the database's: one referral per referred shopper (so one reward,
whatever the retries or replicas), never one's own referrer, no reward between shoppers
sharing a device or push endpoint, and a cap per referrer per period, counted under the
referrer's code row lock. Paying the rewards (points on the wallet ledger, coupons) is the
caller's: the gateway does it in the same transaction as `settle`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from geo import sql
from offers import codes, errors, store

_Q = sql.load("offers", "referrals.sql")

Qualify = Literal["first_purchase", "first_redemption", "points_threshold"]
Event = Literal["purchase", "redemption"]
REFUSALS = ("self_referral", "shared_device", "cap_reached")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """A program's referral rules; these defaults apply until a manager sets some."""

    qualify: Qualify = "first_purchase"
    threshold_points: int | None = None
    referrer_points: int = 200
    referee_points: int = 100
    referrer_offer_id: int | None = None
    referee_offer_id: int | None = None
    cap_limit: int = 10
    cap_days: int = 365

    @classmethod
    def from_row(cls, row: Any) -> Rules:
        return cls(**{k: row[k] for k in cls.__slots__})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """A referral settled now: rewarded (points to pay, coupons issued to deliver) or
    refused."""

    referral_id: int
    referrer_id: int
    referee_id: int
    refused: str | None
    rules: Rules
    # The reward coupons issued in the settlement; the caller queues their delivery.
    sends: tuple[store.Send, ...] = field(default_factory=tuple)


def qualifies(rules: Rules, event: Event, balance: int | None) -> bool:
    """Whether the referred shopper's event (with the balance after it) qualifies."""
    if rules.qualify == "first_purchase":
        return event == "purchase"
    if rules.qualify == "first_redemption":
        return event == "redemption"
    assert rules.threshold_points is not None
    return balance is not None and balance >= rules.threshold_points


def display(code: str) -> str:
    return codes.display(code)


async def code_for(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, at: dt.datetime
) -> str | None:
    """The shopper's referral code (canonical), made on first use; None: no such shopper."""
    found: str | None = await conn.fetchval(_Q["code_of"], shopper_id, merchant_id)
    while found is None:
        try:
            # A savepoint: a collision must not abort the caller's transaction.
            async with conn.transaction():
                status = await conn.execute(
                    _Q["insert_code"],
                    shopper_id,
                    merchant_id,
                    codes.new_code(codes.REFERRAL_SYMBOLS),
                    at,
                )
        except asyncpg.UniqueViolationError:
            continue  # another shopper's code: 45 random bits met again; draw anew
        found = await conn.fetchval(_Q["code_of"], shopper_id, merchant_id)
        if found is None and status == "INSERT 0 0":
            return None
    return found


async def referrer_for(
    conn: asyncpg.Connection, merchant_id: int, typed: str, *, email: str | None, at: dt.datetime
) -> int:
    """The referrer an enrolling shopper's code names, or ReferralCodeRefused.

    ``email`` is the enrolling shopper's: the code's own owner enrolling again is a
    self-referral, refused and recorded for the report (call it outside a transaction
    that the refusal rolls back).
    """
    canonical = codes.normalize(typed, codes.REFERRAL_SYMBOLS)
    if canonical is None:
        if codes.is_mistyped(typed, codes.REFERRAL_SYMBOLS):
            raise errors.ReferralCodeRefused(
                "this referral code has a mistyped symbol; check it", code="code_mistyped"
            )
        raise errors.ReferralCodeRefused("no such referral code", code="unknown_referral_code")
    row = await conn.fetchrow(_Q["referrer_by_code"], merchant_id, canonical)
    if row is None:
        raise errors.ReferralCodeRefused("no such referral code", code="unknown_referral_code")
    if email is not None and row["email"] is not None and row["email"].lower() == email.lower():
        await conn.execute(
            _Q["record_refusal"], merchant_id, row["shopper_id"], "self_referral", at
        )
        raise errors.ReferralCodeRefused(
            "this is the shopper's own referral code", code="self_referral"
        )
    return int(row["shopper_id"])


async def create(
    conn: asyncpg.Connection, merchant_id: int, referrer_id: int, referee_id: int, at: dt.datetime
) -> int:
    return int(await conn.fetchval(_Q["insert_referral"], merchant_id, referrer_id, referee_id, at))


async def rules(conn: asyncpg.Connection, merchant_id: int) -> Rules:
    row = await conn.fetchrow(_Q["rules"], merchant_id)
    return Rules() if row is None else Rules.from_row(row)


async def set_rules(
    conn: asyncpg.Connection, merchant_id: int, new: Rules, at: dt.datetime
) -> Rules:
    for name, offer_id in (
        ("referrer_offer_id", new.referrer_offer_id),
        ("referee_offer_id", new.referee_offer_id),
    ):
        if offer_id is None:
            continue
        rec = await store.get_offer(conn, merchant_id, offer_id)
        # An offer with no geofence has nowhere to log its coupons' decisions.
        if rec is None or await _place(conn, merchant_id, rec) is None:
            raise errors.UnknownPlace(name, [offer_id])
    row = await conn.fetchrow(
        _Q["set_rules"],
        merchant_id,
        new.qualify,
        new.threshold_points,
        new.referrer_points,
        new.referee_points,
        new.referrer_offer_id,
        new.referee_offer_id,
        new.cap_limit,
        new.cap_days,
        at,
    )
    return Rules.from_row(row)


async def settle(
    conn: asyncpg.Connection, merchant_id: int, referee_id: int, rules_: Rules, at: dt.datetime
) -> Settlement | None:
    """Settle the referred shopper's pending referral now that it qualified, inside the
    caller's transaction; None when there is none (never referred, or settled before)."""
    row = await conn.fetchrow(_Q["claim"], merchant_id, referee_id)
    if row is None:
        return None
    referrer_id = int(row["referrer_id"])
    await conn.execute(_Q["lock_referrer"], referrer_id)
    refused: str | None = None
    if await conn.fetchval(_Q["shared_device"], referrer_id, referee_id):
        refused = "shared_device"
    else:
        since = at - dt.timedelta(days=rules_.cap_days)
        if await conn.fetchval(_Q["rewarded_since"], referrer_id, since) >= rules_.cap_limit:
            refused = "cap_reached"
    paid = refused is None
    sends: list[store.Send] = []
    if paid:
        for shopper_id, offer_id in (
            (referrer_id, rules_.referrer_offer_id),
            (referee_id, rules_.referee_offer_id),
        ):
            if offer_id is not None:
                send = await reward_coupon(
                    conn, merchant_id=merchant_id, shopper_id=shopper_id, offer_id=offer_id, at=at
                )
                sends.extend([] if send is None else [send])
    await conn.execute(
        _Q["settle"],
        row["id"],
        "refused" if refused else "rewarded",
        refused,
        at,
        rules_.referrer_points if paid else 0,
        rules_.referee_points if paid else 0,
        len(sends),
    )
    return Settlement(
        referral_id=int(row["id"]),
        referrer_id=referrer_id,
        referee_id=referee_id,
        refused=refused,
        rules=rules_,
        sends=tuple(sends),
    )


async def _place(
    conn: asyncpg.Connection, merchant_id: int, rec: store.OfferRecord
) -> asyncpg.Record | None:
    offer = rec.offer
    return await conn.fetchrow(
        _Q["reward_place"], merchant_id, list(offer.geofence_ids), sorted(rec.scope_store_ids)
    )


async def reward_coupon(
    conn: asyncpg.Connection, *, merchant_id: int, shopper_id: int, offer_id: int, at: dt.datetime
) -> store.Send | None:
    """Issue a coupon of the offer to the shopper as a referral reward: a sent decision
    (trigger ``referral``) and its coupon, as a ping's send is logged, so the offer's
    funnel counts it. None when the offer was archived or its issue budget is spent."""
    rec = await store.get_offer(conn, merchant_id, offer_id)
    place = None if rec is None else await _place(conn, merchant_id, rec)
    if rec is None or place is None or await conn.fetchval(_Q["reserve_reward"], offer_id) is None:
        return None
    offer = rec.offer
    expires = at + dt.timedelta(minutes=offer.coupon.valid_minutes)
    return await store.record_decisions(
        conn,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        at=at,
        rows=[
            store.DecisionRow(
                offer_id=offer_id,
                store_id=place["store_id"],
                fence_id=place["fence_id"],
                trigger="referral",
                reason=None,
                attributable_until=expires,
            )
        ],
        coupon=store.NewCoupon(
            code=codes.new_code(),
            store_ids=rec.scope_store_ids,
            expires_at=expires,
            delivery_id=uuid.uuid4(),
            channels=offer.channels,
        ),
    )


async def shopper_summary(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int
) -> dict[str, int]:
    row = await conn.fetchrow(_Q["shopper_summary"], shopper_id, merchant_id)
    assert row is not None  # an aggregate without GROUP BY has one row
    return {k: int(row[k]) for k in ("invited", "rewarded", "points")}


async def report(
    conn: asyncpg.Connection,
    merchant_id: int,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> dict[str, Any]:
    """Counts over the referrals made in [since, until) (None: unbounded)."""
    row = await conn.fetchrow(_Q["report"], merchant_id, since, until)
    assert row is not None  # an aggregate without GROUP BY has one row
    refused = {reason: int(row[reason]) for reason in REFUSALS}
    return {
        "invitations_used": int(row["used"]),
        "pending": int(row["pending"]),
        "qualified": int(row["qualified"]),
        "rewarded": int(row["rewarded"]),
        "refused": refused,
        "refused_total": sum(refused.values()),
        "points_paid": int(row["points_paid"]),
        "coupons_issued": int(row["coupons_issued"]),
    }
