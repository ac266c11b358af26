"""SQL access for loyalty accounts. Functions take a connection inside the caller's
transaction; every change to a shopper's points locks the shopper's row first."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from geo import sql
from wallet import errors, loyalty

_Q = sql.load("wallet")


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    points: int
    tier: str | None
    tier_changed: bool = False


async def rules(conn: asyncpg.Connection, merchant_id: int) -> loyalty.Rules:
    row = await conn.fetchrow(_Q["rules"], merchant_id)
    return loyalty.Rules() if row is None else loyalty.Rules.from_row(dict(row))


async def set_rules(
    conn: asyncpg.Connection, merchant_id: int, values: dict[str, Any]
) -> loyalty.Rules:
    row = await conn.fetchrow(
        _Q["set_rules"],
        merchant_id,
        values["point_value"],
        values["earn_rate"],
        values["tiers"],
        values["tier_window_days"],
        values["actions"],
        values.get("points_expire_days"),
    )
    assert row is not None
    return loyalty.Rules.from_row(dict(row))


async def lock_shopper(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int
) -> asyncpg.Record:
    row = await conn.fetchrow(_Q["lock_shopper"], shopper_id, merchant_id)
    if row is None:
        raise errors.UnknownShopper()
    return row


async def apply_entry(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    current_tier: str | None,
    kind: str,
    points: int,
    reason: str,
    at: dt.datetime,
    rules_: loyalty.Rules,
    purchase_id: int | None = None,
    key_id: int | None = None,
) -> Balance:
    row = await conn.fetchrow(
        _Q["add_entry"], merchant_id, shopper_id, kind, points, reason, purchase_id, key_id, at
    )
    assert row is not None
    tier = await _settle_tier(conn, merchant_id, shopper_id, current_tier, rules_, at)
    changed = tier != current_tier
    # The loyalty pass shows points and tier: its devices fetch it again.
    await queue_pass_update(
        conn, merchant_id, shopper_id, "tier_changed" if changed else f"points_{kind}"
    )
    return Balance(points=int(row["points"]), tier=tier, tier_changed=changed)


async def _settle_tier(
    conn: asyncpg.Connection,
    merchant_id: int,
    shopper_id: int,
    current_tier: str | None,
    rules_: loyalty.Rules,
    at: dt.datetime,
) -> str | None:
    """Set (and log) the tier the window's earnings give at ``at``; the tier."""
    since = at - dt.timedelta(days=rules_.tier_window_days)
    earned = int(await conn.fetchval(_Q["earned_since"], shopper_id, since))
    tier = loyalty.tier_for(earned, rules_.tiers)
    if tier != current_tier:
        await conn.execute(_Q["set_tier"], merchant_id, shopper_id, current_tier, tier, at)
    return tier


async def change_points(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    kind: str,
    points: int,
    reason: str,
    at: dt.datetime,
    key_id: int | None = None,
) -> Balance:
    """An adjust, a spend (points < 0, never below zero) or an expiry."""
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    if points < 0 and kind in ("spend", "expire") and locked["points"] + points < 0:
        raise errors.InsufficientPoints(int(locked["points"]))
    return await apply_entry(
        conn,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        current_tier=locked["tier"],
        kind=kind,
        points=points,
        reason=reason,
        at=at,
        rules_=await rules(conn, merchant_id),
        key_id=key_id,
    )


async def award_action(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    action: str,
    at: dt.datetime,
    key_id: int | None = None,
) -> Balance:
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    rules_ = await rules(conn, merchant_id)
    rule = (rules_.actions or {}).get(action)
    if rule is None or rule.points <= 0:
        raise errors.ActionLimitReached(action, 0, 0)
    reason = f"action:{action}"
    since = at - dt.timedelta(days=rule.days)
    earlier = [
        r["created_at"] for r in await conn.fetch(_Q["action_times"], shopper_id, reason, since)
    ]
    if not loyalty.action_allowed(rule, earlier, at):
        raise errors.ActionLimitReached(action, rule.limit, rule.days)
    return await apply_entry(
        conn,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        current_tier=locked["tier"],
        kind="earn",
        points=rule.points,
        reason=reason,
        at=at,
        rules_=rules_,
        key_id=key_id,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    id: int
    shopper_id: int
    store_id: int
    amount: Decimal
    order_ref: str | None
    points: int
    created_at: dt.datetime
    balance: int | None = None
    tier: str | None = None
    created: bool = True


def purchase_hash(shopper_id: int, store_id: int, amount: Decimal, order_ref: str | None) -> bytes:
    text = f"{shopper_id}\x1f{store_id}\x1f{format(amount.normalize(), 'f')}\x1f{order_ref or ''}"
    return hashlib.sha256(text.encode()).digest()


async def record_purchase(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    store_id: int,
    amount: Decimal,
    order_ref: str | None,
    key_id: int,
    idempotency_key: str,
    at: dt.datetime,
) -> Purchase:
    """Earn points for a purchase, once per idempotency key; also a conversion for offers."""
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    fingerprint = purchase_hash(shopper_id, store_id, amount, order_ref)
    # After the lock: a concurrent first attempt with this key (same shopper) has committed.
    earlier = await conn.fetchrow(_Q["purchase_by_key"], merchant_id, idempotency_key)
    if earlier is not None:
        if bytes(earlier["request_hash"]) != fingerprint:
            raise errors.IdempotencyKeyReused()
        return Purchase(
            **{
                k: earlier[k]
                for k in (
                    "id",
                    "shopper_id",
                    "store_id",
                    "amount",
                    "order_ref",
                    "points",
                    "created_at",
                )
            },
            balance=int(locked["points"]),
            tier=locked["tier"],
            created=False,
        )
    rules_ = await rules(conn, merchant_id)
    points = loyalty.purchase_points(amount, rules_)
    row = await conn.fetchrow(
        _Q["insert_purchase"],
        merchant_id,
        shopper_id,
        store_id,
        amount,
        order_ref,
        points,
        key_id,
        idempotency_key,
        fingerprint,
        at,
    )
    assert row is not None
    balance = Balance(points=int(locked["points"]), tier=locked["tier"])
    if points > 0:
        balance = await apply_entry(
            conn,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            current_tier=locked["tier"],
            kind="earn",
            points=points,
            reason="purchase",
            at=at,
            rules_=rules_,
            purchase_id=row["id"],
            key_id=key_id,
        )
    # A transaction at the till: it converts open offer decisions at this store.
    await conn.execute(
        "SELECT record_conversion($1, $2, $3, 'purchase', $4, $5)",
        merchant_id,
        shopper_id,
        store_id,
        amount,
        at,
    )
    return Purchase(
        **{
            k: row[k]
            for k in ("id", "shopper_id", "store_id", "amount", "order_ref", "points", "created_at")
        },
        balance=balance.points,
        tier=balance.tier,
    )


async def ledger(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, *, before: int, limit: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["ledger"], shopper_id, merchant_id, before, limit))


async def ledger_sum(conn: asyncpg.Connection, shopper_id: int) -> int:
    return int(await conn.fetchval(_Q["ledger_sum"], shopper_id))


# -- passes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletConfig:
    pass_type_id: str
    team_id: str
    organization: str
    cert_pem: str
    key_pem: str
    wwdr_pem: str
    dev: bool
    updated_at: dt.datetime
    apns_key_pem: str | None = None
    apns_key_id: str | None = None


async def wallet_config(conn: asyncpg.Connection, merchant_id: int) -> WalletConfig:
    """The merchant's signing configuration; development certificates if none was set."""
    row = await conn.fetchrow(_Q["wallet_config"], merchant_id)
    if row is None:
        from wallet import passes

        pass_type = f"pass.dev.gateway.m{merchant_id}"
        made = passes.dev_certificates(pass_type, "DEVTEAM000")
        name = await conn.fetchval("SELECT name FROM merchants WHERE id = $1", merchant_id)
        await conn.execute(
            _Q["put_dev_config"],
            merchant_id,
            pass_type,
            "DEVTEAM000",
            name or "Loyalty",
            made.cert_pem.decode(),
            made.key_pem.decode(),
            made.ca_pem.decode(),
        )
        row = await conn.fetchrow(_Q["wallet_config"], merchant_id)
        assert row is not None
    return WalletConfig(**dict(row))


async def put_wallet_config(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    pass_type_id: str,
    team_id: str,
    organization: str,
    cert_pem: str,
    key_pem: str,
    wwdr_pem: str,
    apns_key_pem: str | None,
    apns_key_id: str | None,
) -> None:
    """Store the merchant's own pass certificates (checked by the caller)."""
    await conn.execute(
        _Q["put_config"],
        merchant_id,
        pass_type_id,
        team_id,
        organization,
        cert_pem,
        key_pem,
        wwdr_pem,
        apns_key_pem,
        apns_key_id,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyPassRow:
    serial: str
    auth_token: str
    name: str | None
    points: int
    tier: str | None
    modified_at: dt.datetime
    stores: list[tuple[str, float, float]]


async def loyalty_pass(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, at: dt.datetime
) -> LoyaltyPassRow:
    """The shopper's loyalty pass record, made on first request (serial and token stay)."""
    from wallet import passes

    await conn.execute(
        _Q["ensure_loyalty_pass"],
        merchant_id,
        shopper_id,
        "L" + secrets_token(),
        passes.new_auth_token(),
        at,
    )
    row = await conn.fetchrow(_Q["loyalty_pass"], shopper_id, merchant_id)
    if row is None:
        raise errors.UnknownShopper()
    stores = await conn.fetch(_Q["nearest_stores"], merchant_id, row["last_lat"], row["last_lon"])
    return LoyaltyPassRow(
        serial=row["serial"],
        auth_token=row["auth_token"],
        name=row["name"],
        points=int(row["points"]),
        tier=row["tier"],
        modified_at=row["modified_at"],
        stores=[(s["name"], s["lat"], s["lon"]) for s in stores],
    )


def secrets_token() -> str:
    import secrets

    return secrets.token_hex(10).upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class PassRecord:
    id: int
    merchant_id: int
    shopper_id: int
    kind: str
    serial: str
    auth_token: str
    pass_type_id: str
    coupon_id: int | None = None


async def pass_by_serial(
    conn: asyncpg.Connection, pass_type_id: str, serial: str
) -> PassRecord | None:
    row = await conn.fetchrow(_Q["pass_by_serial"], serial, pass_type_id)
    return None if row is None else PassRecord(**dict(row))


async def register_device(
    conn: asyncpg.Connection, device: str, pass_id: int, push_token: str
) -> bool:
    """Whether the registration is new."""
    return bool(await conn.fetchval(_Q["register_device"], device, pass_id, push_token))


async def unregister_device(conn: asyncpg.Connection, device: str, pass_id: int) -> None:
    await conn.execute(_Q["unregister_device"], device, pass_id)


async def device_passes(
    conn: asyncpg.Connection, device: str, pass_type_id: str
) -> list[tuple[str, dt.datetime]]:
    rows = await conn.fetch(_Q["device_passes"], device, pass_type_id)
    return [(r["serial"], r["modified_at"]) for r in rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponPassRow:
    serial: str
    auth_token: str
    code: str
    title: str
    discount: str
    barcode_format: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    redeemed: bool
    modified_at: dt.datetime
    stores: list[tuple[str, float, float]]


async def coupon_pass(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, coupon_id: int, at: dt.datetime
) -> CouponPassRow | None:
    """The coupon's pass record, made on first request; None if it is not the shopper's."""
    from wallet import passes

    await conn.execute(
        _Q["ensure_coupon_pass"],
        coupon_id,
        shopper_id,
        "C" + secrets_token(),
        passes.new_auth_token(),
        at,
    )
    row = await conn.fetchrow(_Q["coupon_pass"], coupon_id, shopper_id)
    if row is None:
        return None
    stores = await conn.fetch(_Q["stores_by_id"], list(row["scope_store_ids"]))
    spec = row["spec"]
    return CouponPassRow(
        serial=row["serial"],
        auth_token=row["auth_token"],
        code=row["code"],
        title=row["title"],
        discount=spec["discount"],
        barcode_format=spec.get("barcode_format", "qr"),
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        redeemed=row["redeemed_at"] is not None,
        modified_at=row["modified_at"],
        stores=[(s["name"], s["lat"], s["lon"]) for s in stores],
    )


async def queue_pass_update(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, reason: str
) -> None:
    """Queue an APNs pass-update push, in the caller's transaction."""
    await conn.execute(_Q["queue_pass_update"], merchant_id, shopper_id, reason)


async def claim_pass_updates(
    conn: asyncpg.Connection, batch: int, lease_seconds: float
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["claim_pass_updates"], batch, lease_seconds))


async def shopper_registrations(conn: asyncpg.Connection, shopper_id: int) -> list[str]:
    rows = await conn.fetch(_Q["shopper_registrations"], shopper_id)
    return sorted({r["push_token"] for r in rows})


async def drop_registrations(conn: asyncpg.Connection, push_tokens: list[str]) -> None:
    await conn.execute(_Q["drop_registrations"], push_tokens)


async def pass_update_done(
    conn: asyncpg.Connection, update_id: int, attempts: int, error: str | None
) -> None:
    await conn.execute(_Q["pass_update_done"], update_id, attempts, error)


async def pass_update_retry(
    conn: asyncpg.Connection, update_id: int, attempts: int, error: str, delay: float
) -> None:
    await conn.execute(_Q["pass_update_retry"], update_id, attempts, error, delay)


# --- upkeep ---------------------------------------------------------------------------


async def merchant_ids(conn: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await conn.fetch(_Q["merchant_ids"])]


async def shoppers_with_expiring_points(
    conn: asyncpg.Connection, merchant_id: int, cutoff: dt.datetime, after: int, limit: int
) -> list[int]:
    rows = await conn.fetch(_Q["expiring_points_page"], merchant_id, cutoff, after, limit)
    return [r["shopper_id"] for r in rows]


async def expire_points(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    cutoff: dt.datetime,
    at: dt.datetime,
    rules_: loyalty.Rules,
) -> int:
    """Expire the shopper's unused points credited up to ``cutoff``; returns how many."""
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    sums = await conn.fetchrow(_Q["expiry_sums"], shopper_id, cutoff)
    assert sums is not None
    points = loyalty.expiring_points(int(sums["credits"]), int(sums["debits"]), locked["points"])
    if points > 0:
        await apply_entry(
            conn,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            current_tier=locked["tier"],
            kind="expire",
            points=-points,
            reason="expiry",
            at=at,
            rules_=rules_,
        )
    return points


async def tier_page(
    conn: asyncpg.Connection, merchant_id: int, since: dt.datetime, after: int, limit: int
) -> list[tuple[int, str | None, int]]:
    """(shopper id, tier held, points earned since ``since``) for shoppers with a tier."""
    rows = await conn.fetch(_Q["tier_page"], merchant_id, since, after, limit)
    return [(r["id"], r["tier"], int(r["earned"])) for r in rows]


async def recompute_tier(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    rules_: loyalty.Rules,
    at: dt.datetime,
) -> bool:
    """Set the tier the window's earnings give now; True if it changed."""
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    tier = await _settle_tier(conn, merchant_id, shopper_id, locked["tier"], rules_, at)
    if tier == locked["tier"]:
        return False
    await queue_pass_update(conn, merchant_id, shopper_id, "tier_changed")
    return True


async def expire_coupon_passes(conn: asyncpg.Connection, at: dt.datetime) -> int:
    """Mark coupon passes whose coupon expired unredeemed; queue their pass updates."""
    return int(await conn.fetchval(_Q["expire_coupon_passes"], at))
