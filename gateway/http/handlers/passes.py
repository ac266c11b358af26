"""Apple Wallet passes for shoppers: the loyalty card and coupons, signed once per version.

A pass is built and signed when its content changed since the last build (its version,
`wallet.passcache.version`); otherwise the stored build is answered byte for byte, from
this process's memory or from `pass_cache`, which every process shares. So a fan-out
that refreshes a million passes signs each once, however many devices fetch it.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS
from offers import codes, referrals
from wallet import errors as wallet_errors
from wallet import passcache, passes
from wallet.store import passes as pass_store

PKPASS = "application/vnd.apple.pkpass"


async def _signer(
    request: web.Request, merchant_id: int, conn: asyncpg.Connection, config_at: object = None
) -> tuple[pass_store.WalletConfig, passes.Signer]:
    """The merchant's configuration and signer, parsed once per process and configuration.

    `config_at`, when the caller read it already, saves reading the configuration again
    while it has not changed."""
    cache = request.app[SIGNERS]
    cached = cache.get(merchant_id)
    if cached is not None and config_at is not None and cached[0].updated_at == config_at:
        return cached
    config = await pass_store.wallet_config(conn, merchant_id)
    if cached is None or cached[0].updated_at != config.updated_at:
        signer = passes.Signer.from_pem(
            config.cert_pem.encode(), config.key_pem.encode(), config.wwdr_pem.encode()
        )
        cached = cache[merchant_id] = (config, signer)
    return cached


async def _built(
    request: web.Request,
    conn: asyncpg.Connection,
    pass_id: int,
    card: Any,
    config: pass_store.WalletConfig,
    build: Callable[[], bytes],
) -> bytes:
    """The pass of this version: from memory, else from `pass_cache`, else built, signed
    and kept in both. Concurrent requests for the same new version build it once."""
    version = passcache.version(card, f"{config.pass_type_id} {config.updated_at.isoformat()}")
    key = f"{pass_id}"
    memory = request.app[PASS_CACHE]
    body = memory.get(key, version)
    if body is not None:
        return body
    building = request.app[BUILDING]
    pending = building.get((key, version))
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    building[(key, version)] = future
    try:
        body = await pass_store.cached_pass(conn, pass_id, version)
        if body is None:
            body = build()
            memory.built += 1
            await pass_store.cache_pass(conn, pass_id, version, body)
        memory.put(key, version, body)
        future.set_result(body)
        return body
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no waiter may be left
        raise
    finally:
        del building[(key, version)]


def new_cache(megabytes: int) -> passcache.PassCache:
    """This process's memory of signed passes (GATEWAY_PASS_CACHE_MB)."""
    return passcache.PassCache(max(0, megabytes) * 1024 * 1024)


def _pass_response(body: bytes, last_modified: str, filename: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=PKPASS,
        headers={
            "Last-Modified": last_modified,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


async def loyalty_pass(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    return await render_loyalty(request, p.merchant_id, p.shopper_id)


async def render_loyalty(
    request: web.Request, merchant_id: int, shopper_id: int, *, ensure: bool = True
) -> web.Response:
    """The signed loyalty pass of a shopper, or 304 if the client's copy is current.

    `ensure=False`: the pass is known to exist (a device fetching it by serial)."""
    async with db.acquire(request.app[POOL]) as conn:
        try:
            row = await pass_store.loyalty_pass(
                conn, merchant_id, shopper_id, request.app[CLOCK].now(), ensure=ensure
            )
        except wallet_errors.UnknownShopper:
            raise errors.NotFound("no such shopper") from None
        modified = row.modified_at.replace(microsecond=0)
        last_modified = email.utils.format_datetime(modified, usegmt=True)
        since = request.if_modified_since
        if since is not None and modified <= since:
            return web.Response(status=304, headers={"Last-Modified": last_modified})
        config, signer = await _signer(request, merchant_id, conn, row.config_at)
        referral = await referrals.code_for(conn, merchant_id, shopper_id, request.app[CLOCK].now())
        card = passes.LoyaltyCard(
            pass_type_id=config.pass_type_id,
            team_id=config.team_id,
            organization=config.organization,
            serial=row.serial,
            auth_token=row.auth_token,
            web_service_url=f"{request.app[SETTINGS].base_url}/wallet",
            member_name=row.name,
            member_code=row.serial,
            points=row.points,
            tier=row.tier,
            referral_code=None if referral is None else referrals.display(referral),
            places=tuple(
                passes.PlaceNearby(lat=lat, lon=lon, text=f"{name} is nearby")
                for name, lat, lon in row.stores
            ),
        )
        body = await _built(
            request, conn, row.id, card, config, lambda: passes.loyalty_pass(card, signer)
        )
    return _pass_response(body, last_modified, "loyalty.pkpass")


async def coupon_pass(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    return await render_coupon(
        request, p.merchant_id, p.shopper_id, api.path_id(request, "coupon_id")
    )


async def render_coupon(
    request: web.Request, merchant_id: int, shopper_id: int, coupon_id: int
) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        row = await pass_store.coupon_pass(
            conn, merchant_id, shopper_id, coupon_id, request.app[CLOCK].now()
        )
        if row is None:
            raise errors.NotFound("no such coupon")
        modified = row.modified_at.replace(microsecond=0)
        last_modified = email.utils.format_datetime(modified, usegmt=True)
        since = request.if_modified_since
        if since is not None and modified <= since:
            return web.Response(status=304, headers={"Last-Modified": last_modified})
        config, signer = await _signer(request, merchant_id, conn)
        card = passes.CouponCard(
            pass_type_id=config.pass_type_id,
            team_id=config.team_id,
            organization=config.organization,
            serial=row.serial,
            auth_token=row.auth_token,
            web_service_url=f"{request.app[SETTINGS].base_url}/wallet",
            title=row.title,
            discount=row.discount,
            code=codes.display(row.code),
            barcode_format=row.barcode_format,
            issued_at=row.issued_at,
            expires_at=row.expires_at,
            redeemed=row.redeemed,
            places=tuple(
                passes.PlaceNearby(lat=lat, lon=lon, text=f"Use your coupon at {name}")
                for name, lat, lon in row.stores
            ),
        )
        body = await _built(
            request, conn, row.id, card, config, lambda: passes.coupon_pass(card, signer)
        )
    return _pass_response(body, last_modified, "coupon.pkpass")


# A pass, or 304 when the client's copy is current.
PASS_REPLIES = {
    200: Reply(
        description="The pass",
        content_type=PKPASS,
        schema={"type": "string", "format": "binary"},
        headers={"Last-Modified": "When the pass's content last changed"},
    ),
    304: Reply(description="Not modified", content_type=""),
}

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/passes/loyalty",
        handler=loyalty_pass,
        tag="wallet",
        summary="The shopper's Apple Wallet loyalty card (.pkpass)",
        description="A storeCard with points and tier (each with a changeMessage), the member "
        "barcode and up to 10 nearby stores. Signed with the merchant's pass certificate; "
        "without one, development certificates are made and labelled not valid on Apple "
        "devices. 304 when If-Modified-Since is not older than Last-Modified.",
        roles=frozenset({Role.SHOPPER}),
        replies=PASS_REPLIES,
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/passes/coupons/{coupon_id}",
        handler=coupon_pass,
        tag="wallet",
        summary="One of the shopper's coupons as an Apple Wallet coupon pass (.pkpass)",
        description="Carries expirationDate and relevantDate, the offer's stores as locations "
        "(at most 10), and is voided once the coupon is redeemed. 304 when "
        "If-Modified-Since is not older than Last-Modified.",
        roles=frozenset({Role.SHOPPER}),
        replies=PASS_REPLIES,
        errors=(404,),
    ),
]


SIGNERS = web.AppKey("signers", dict[int, tuple[pass_store.WalletConfig, passes.Signer]])
PASS_CACHE = web.AppKey("pass_cache", passcache.PassCache)
BUILDING = web.AppKey("passes_building", dict[tuple[str, bytes], "asyncio.Future[bytes]"])
