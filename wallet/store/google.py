"""SQL access for Google Wallet: the merchant's issuer configuration, the objects issued to
shoppers with what they show, and the log of notifications against Google's quota.
Functions run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from geo import sql
from wallet import errors
from wallet.google import account, objects

_Q = sql.load("wallet.google")
_W = sql.load("wallet")


@dataclass(frozen=True, slots=True, kw_only=True)
class GoogleConfig:
    program: objects.Program
    service_account: account.ServiceAccount
    dev: bool
    updated_at: dt.datetime


async def config(conn: asyncpg.Connection, merchant_id: int) -> GoogleConfig | None:
    row = await conn.fetchrow(_Q["config"], merchant_id)
    if row is None:
        return None
    return GoogleConfig(
        program=objects.Program(
            issuer_id=row["issuer_id"],
            merchant_id=merchant_id,
            issuer_name=row["issuer_name"],
            program_name=row["program_name"],
            logo_url=row["logo_url"],
            background_color=row["background_color"],
        ),
        service_account=account.parse(row["service_account"]),
        dev=row["dev"],
        updated_at=row["updated_at"],
    )


async def required_config(conn: asyncpg.Connection, merchant_id: int) -> GoogleConfig:
    found = await config(conn, merchant_id)
    if found is None:
        raise errors.GoogleWalletNotConfigured()
    return found


async def put_config(
    conn: asyncpg.Connection, program: objects.Program, service_account: account.ServiceAccount
) -> None:
    """Store the merchant's issuer (the service account was checked by the caller)."""
    await conn.execute(
        _Q["put_config"],
        program.merchant_id,
        program.issuer_id,
        service_account.text(),
        service_account.client_email,
        program.program_name,
        program.issuer_name,
        program.logo_url,
        program.background_color,
        service_account.dev,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyRow:
    id: int
    card: objects.LoyaltyCard
    synced_hash: str | None
    deleted: bool


async def loyalty_card(
    conn: asyncpg.Connection, program: objects.Program, shopper_id: int
) -> LoyaltyRow | None:
    """The shopper's Google card as it should read now; None if none was issued."""
    row = await conn.fetchrow(_Q["loyalty_card"], shopper_id, program.merchant_id)
    if row is None:
        return None
    stores = await conn.fetch(
        _W["nearest_stores"], program.merchant_id, row["last_lat"], row["last_lon"]
    )
    card = objects.LoyaltyCard(
        object_id=row["object_id"],
        class_id=row["class_id"],
        member_code=row["object_id"].rsplit("-", 1)[-1][:16].upper(),
        member_name=row["name"],
        points=int(row["points"]),
        tier=row["tier"],
        places=[(s["lat"], s["lon"]) for s in stores],
        linked_offer_ids=list(row["linked"]),
        referral_code=row["referral_code"],
    )
    return LoyaltyRow(
        id=row["id"], card=card, synced_hash=row["synced_hash"], deleted=bool(row["deleted_at"])
    )


async def ensure_loyalty_card(
    conn: asyncpg.Connection, program: objects.Program, shopper_id: int, at: dt.datetime
) -> LoyaltyRow:
    """The shopper's card, made on first request (its id never changes)."""
    await conn.execute(
        _Q["ensure_loyalty_object"],
        program.merchant_id,
        shopper_id,
        objects.new_object_id(program, "loyalty"),
        objects.loyalty_class_id(program),
        at,
    )
    found = await loyalty_card(conn, program, shopper_id)
    if found is None:
        raise errors.UnknownShopper()
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRow:
    id: int
    coupon_id: int
    offer_id: int
    title: str
    details: str
    card: objects.CouponCard
    synced_hash: str | None
    deleted: bool


async def offer_cards(
    conn: asyncpg.Connection, shopper_id: int, coupon_id: int | None = None
) -> list[OfferRow]:
    """The shopper's Google coupons (or one of them) as they should read now."""
    out = []
    for row in await conn.fetch(_Q["offer_cards"], shopper_id, coupon_id):
        stores = await conn.fetch(_W["stores_by_id"], list(row["store_ids"]))
        spec = row["spec"]
        out.append(
            OfferRow(
                id=row["id"],
                coupon_id=row["coupon_id"],
                offer_id=row["offer_id"],
                title=row["title"],
                details=spec.get("discount") or row["body"] or row["title"],
                card=objects.CouponCard(
                    object_id=row["object_id"],
                    class_id=row["class_id"],
                    code=row["code"],
                    barcode_format=spec.get("barcode_format", "qr"),
                    issued_at=row["issued_at"],
                    expires_at=row["expires_at"],
                    redeemed=row["redeemed"],
                    places=[(s["lat"], s["lon"]) for s in stores],
                ),
                synced_hash=row["synced_hash"],
                deleted=bool(row["deleted_at"]),
            )
        )
    return out


async def ensure_offer_card(
    conn: asyncpg.Connection,
    program: objects.Program,
    shopper_id: int,
    coupon_id: int,
    at: dt.datetime,
    *,
    live_only: bool,
) -> OfferRow | None:
    """The coupon's Google object, made on first request; None if the coupon is not the
    shopper's. With ``live_only``, a redeemed or expired coupon raises CouponNotLive."""
    coupon = await conn.fetchrow(_Q["shopper_coupon"], coupon_id, shopper_id, program.merchant_id)
    if coupon is None:
        return None
    if live_only and coupon["redeemed"]:
        raise errors.CouponNotLive("redeemed")
    if live_only and coupon["expires_at"] <= at:
        raise errors.CouponNotLive("expired")
    await conn.execute(
        _Q["ensure_offer_object"],
        coupon_id,
        shopper_id,
        objects.new_object_id(program, "coupon"),
        objects.offer_class_id(program, coupon["offer_id"]),
        at,
    )
    rows = await offer_cards(conn, shopper_id, coupon_id)
    return rows[0] if rows else None


async def coupon_is_shoppers(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, coupon_id: int
) -> bool:
    return bool(await conn.fetchval(_Q["coupon_is_shoppers"], coupon_id, shopper_id, merchant_id))


async def delivery_coupon(conn: asyncpg.Connection, delivery_id: object) -> int | None:
    found = await conn.fetchval(_Q["delivery_coupon"], delivery_id)
    return None if found is None else int(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackObject:
    """The object a Google Wallet callback is about."""

    id: int
    shopper_id: int
    # The coupon of an OfferObject; None for the loyalty card.
    coupon_id: int | None
    deleted: bool


async def callback_object(
    conn: asyncpg.Connection, merchant_id: int, object_id: str
) -> CallbackObject | None:
    """The merchant's object of this id, locked until the caller's transaction ends; None
    if it issued none by that id."""
    row = await conn.fetchrow(_Q["callback_object"], merchant_id, object_id)
    if row is None:
        return None
    return CallbackObject(
        id=row["id"],
        shopper_id=row["shopper_id"],
        coupon_id=row["coupon_id"],
        deleted=row["deleted_at"] is not None,
    )


async def set_deleted(
    conn: asyncpg.Connection, object_row_id: int, deleted_at: dt.datetime | None
) -> None:
    """Mark the object deleted from the shopper's wallet (no updates go to it), or saved
    again (``None``)."""
    await conn.execute(_Q["set_deleted"], object_row_id, deleted_at)


async def mark_synced(
    conn: asyncpg.Connection, object_row_id: int, digest: str, state: str, at: dt.datetime
) -> None:
    await conn.execute(_Q["mark_synced"], object_row_id, digest, state, at)


async def notified_since(conn: asyncpg.Connection, object_row_id: int, since: dt.datetime) -> int:
    return int(await conn.fetchval(_Q["notified_since"], object_row_id, since))


async def record_notification(
    conn: asyncpg.Connection,
    object_row_id: int,
    *,
    notified: bool,
    silent_reason: str | None,
    reason: str,
    at: dt.datetime,
) -> None:
    await conn.execute(
        _Q["record_notification"], object_row_id, notified, silent_reason, reason, at
    )


async def expire_offers(conn: asyncpg.Connection, at: dt.datetime) -> int:
    """Queue an update for shoppers whose Google coupons expired unredeemed."""
    return int(await conn.fetchval(_Q["expire_offers"], at))


async def queue_update(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, reason: str
) -> None:
    """Queue a Google update for the shopper, in the caller's transaction."""
    await conn.execute(_Q["queue_update"], merchant_id, shopper_id, reason)
