"""Apple Wallet passes for shoppers: the loyalty card, signed on request."""

from __future__ import annotations

import email.utils

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
from wallet import passes
from wallet.store import passes as pass_store

PKPASS = "application/vnd.apple.pkpass"


async def _signer(
    request: web.Request, merchant_id: int, conn: object
) -> tuple[pass_store.WalletConfig, passes.Signer]:
    """The merchant's signer, parsed once per process and configuration."""
    config = await pass_store.wallet_config(conn, merchant_id)  # type: ignore[arg-type]
    cache = request.app[SIGNERS]
    cached = cache.get(merchant_id)
    if cached is None or cached[0] != config.updated_at:
        signer = passes.Signer.from_pem(
            config.cert_pem.encode(), config.key_pem.encode(), config.wwdr_pem.encode()
        )
        cache[merchant_id] = (config.updated_at, signer)
        return config, signer
    return config, cached[1]


async def loyalty_pass(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    return await render_loyalty(request, p.merchant_id, p.shopper_id)


async def render_loyalty(request: web.Request, merchant_id: int, shopper_id: int) -> web.Response:
    """The signed loyalty pass of a shopper, or 304 if the client's copy is current."""
    async with db.acquire(request.app[POOL]) as conn:
        config, signer = await _signer(request, merchant_id, conn)
        try:
            row = await pass_store.loyalty_pass(
                conn, merchant_id, shopper_id, request.app[CLOCK].now()
            )
        except wallet_errors.UnknownShopper:
            raise errors.NotFound("no such shopper") from None
        referral = await referrals.code_for(conn, merchant_id, shopper_id, request.app[CLOCK].now())
    modified = row.modified_at.replace(microsecond=0)
    since = request.if_modified_since
    if since is not None and modified <= since:
        return web.Response(
            status=304,
            headers={"Last-Modified": email.utils.format_datetime(modified, usegmt=True)},
        )
    settings = request.app[SETTINGS]
    card = passes.LoyaltyCard(
        pass_type_id=config.pass_type_id,
        team_id=config.team_id,
        organization=config.organization,
        serial=row.serial,
        auth_token=row.auth_token,
        web_service_url=f"{settings.base_url}/wallet",
        member_name=row.name,
        member_code=row.serial,
        points=row.points,
        tier=row.tier,
        referral_code=None if referral is None else referrals.display(referral),
        places=[
            passes.PlaceNearby(lat=lat, lon=lon, text=f"{name} is nearby")
            for name, lat, lon in row.stores
        ],
    )
    body = passes.loyalty_pass(card, signer)
    return web.Response(
        body=body,
        content_type=PKPASS,
        headers={
            "Last-Modified": email.utils.format_datetime(modified, usegmt=True),
            "Content-Disposition": 'attachment; filename="loyalty.pkpass"',
        },
    )


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
        config, signer = await _signer(request, merchant_id, conn)
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
        places=[
            passes.PlaceNearby(lat=lat, lon=lon, text=f"Use your coupon at {name}")
            for name, lat, lon in row.stores
        ],
    )
    return web.Response(
        body=passes.coupon_pass(card, signer),
        content_type=PKPASS,
        headers={
            "Last-Modified": last_modified,
            "Content-Disposition": 'attachment; filename="coupon.pkpass"',
        },
    )


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


SIGNERS = web.AppKey("signers", dict[int, tuple[object, passes.Signer]])
