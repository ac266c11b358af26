"""SQL access for wallet passes: signing configuration, pass rows, device registrations
and the durable pass-update queue. Functions run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from geo import sql
from wallet import errors

_Q = sql.load("wallet")


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
    id: int
    serial: str
    auth_token: str
    name: str | None
    points: int
    tier: str | None
    modified_at: dt.datetime
    stores: list[tuple[str, float, float]]
    config_at: dt.datetime | None  # when the signing configuration changed; None: none yet


async def loyalty_pass(
    conn: asyncpg.Connection,
    merchant_id: int,
    shopper_id: int,
    at: dt.datetime,
    *,
    ensure: bool = True,
) -> LoyaltyPassRow:
    """The shopper's loyalty pass record, made on first request (serial and token stay);
    `ensure=False` when the pass is known to exist (a device fetching it)."""
    from wallet import passes

    if ensure:
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
    return LoyaltyPassRow(
        id=row["id"],
        serial=row["serial"],
        auth_token=row["auth_token"],
        name=row["name"],
        points=int(row["points"]),
        tier=row["tier"],
        modified_at=row["modified_at"],
        stores=[(name, lat, lon) for name, lat, lon in row["stores"]],
        config_at=row["config_at"],
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
    id: int
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
        id=row["id"],
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
    conn: asyncpg.Connection, batch: int, lease_seconds: float, target: str = "apple"
) -> list[asyncpg.Record]:
    """Claim due updates for one target: 'apple' (APNs) or 'google' (Wallet REST API)."""
    return list(await conn.fetch(_Q["claim_pass_updates"], batch, lease_seconds, target))


async def shopper_registrations(conn: asyncpg.Connection, shopper_id: int) -> list[str]:
    rows = await conn.fetch(_Q["shopper_registrations"], shopper_id)
    return sorted({r["push_token"] for r in rows})


async def drop_registrations(conn: asyncpg.Connection, push_tokens: list[str]) -> None:
    await conn.execute(_Q["drop_registrations"], push_tokens)


async def pass_update_done(
    conn: asyncpg.Connection, update_id: int, attempts: int, error: str | None
) -> None:
    await conn.execute(_Q["pass_update_done"], update_id, attempts, error)


async def pass_update_dead(
    conn: asyncpg.Connection, update_id: int, attempts: int, error: str
) -> None:
    await conn.execute(_Q["pass_update_dead"], update_id, attempts, error)


async def pass_update_retry(
    conn: asyncpg.Connection, update_id: int, attempts: int, error: str, delay: float
) -> None:
    await conn.execute(_Q["pass_update_retry"], update_id, attempts, error, delay)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppleUpdate:
    """A claimed APNs pass update and the push tokens it goes to."""

    id: int
    merchant_id: int
    shopper_id: int
    attempts: int
    tokens: tuple[str, ...]


async def claim_apple_updates(
    conn: asyncpg.Connection, batch: int, lease_seconds: float
) -> list[AppleUpdate]:
    """Claim due APNs updates with their devices, in one statement."""
    rows = await conn.fetch(_Q["claim_apple_updates"], batch, lease_seconds)
    return [
        AppleUpdate(
            id=r["id"],
            merchant_id=r["merchant_id"],
            shopper_id=r["shopper_id"],
            attempts=r["attempts"],
            tokens=tuple(r["tokens"]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppleSettlement:
    """What became of one claimed update: done, or retried later for `retry` tokens."""

    update: AppleUpdate
    error: str | None
    retry: tuple[str, ...] = ()
    delay: float = 0.0


async def settle_apple_updates(
    conn: asyncpg.Connection, settled: list[AppleSettlement], gone: list[str]
) -> None:
    """A batch's outcome in three statements: gone devices, done rows, rows to retry."""
    if gone:
        await conn.execute(_Q["drop_registrations"], gone)
    done = [s for s in settled if not s.retry]
    if done:
        await conn.execute(
            _Q["apple_updates_done"],
            [s.update.id for s in done],
            [s.update.attempts for s in done],
            [s.error for s in done],
        )
    again = [s for s in settled if s.retry]
    if again:
        await conn.execute(
            _Q["apple_updates_retry"],
            [s.update.id for s in again],
            [s.update.attempts for s in again],
            [s.error or "retry" for s in again],
            [" ".join(s.retry) for s in again],
            [s.delay for s in again],
        )


async def cached_pass(conn: asyncpg.Connection, pass_id: int, version: bytes) -> bytes | None:
    """The pass's stored build, if it is of this version."""
    body = await conn.fetchval(_Q["cached_pass"], pass_id, version)
    return None if body is None else bytes(body)


async def cache_pass(conn: asyncpg.Connection, pass_id: int, version: bytes, body: bytes) -> None:
    """Keep a build as the pass's current one, replacing an older version."""
    await conn.execute(_Q["cache_pass"], pass_id, version, body)
