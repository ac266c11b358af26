"""Referral rewards: when a referred shopper's purchase or redemption qualifies the
referral, settle it (offers.referrals, which issues the reward coupons), pay both sides'
points on the loyalty ledger (wallet) and queue the coupons' delivery, all in the
caller's transaction, so the settlement and its payments commit together or not at all.
offers and wallet never import each other; this is where they meet.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg

from gateway.delivery import outbox
from offers import referrals
from wallet.store import ledger as wallet_ledger

log = logging.getLogger(__name__)


async def after_event(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    event: referrals.Event,
    balance: int | None,
    at: dt.datetime,
    key_id: int | None,
) -> tuple[referrals.Settlement | None, wallet_ledger.Balance | None]:
    """Settle and pay the shopper's pending referral if ``event`` qualifies it; with the
    referred shopper's balance after the payment (None: unchanged)."""
    rules = await referrals.rules(conn, merchant_id)
    if not referrals.qualifies(rules, event, balance):
        return None, None
    done = await referrals.settle(conn, merchant_id, shopper_id, rules, at)
    if done is None:
        return None, None
    if done.refused is not None:
        log.info("referral refused", extra={"referral_id": done.referral_id, "why": done.refused})
        return done, None
    # The reward coupons reach the inbox, push and wallet like any offer's coupon.
    await outbox.enqueue(conn, list(done.sends))
    paid = None
    for side, who, points in (
        ("referrer", done.referrer_id, rules.referrer_points),
        ("referee", done.referee_id, rules.referee_points),
    ):
        if points > 0:
            balance_now = await wallet_ledger.change_points(
                conn,
                merchant_id=merchant_id,
                shopper_id=who,
                kind="earn",
                points=points,
                reason=f"referral:{side}",
                at=at,
                key_id=key_id,
            )
            if side == "referee":
                paid = balance_now
    log.info("referral rewarded", extra={"referral_id": done.referral_id})
    return done, paid
