"""Google Wallet for shoppers: "Save to Google Wallet" links for the loyalty card and for
each live coupon, signed with the merchant's service-account key (parsed once)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS
from offers import referrals
from wallet.google import links, objects
from wallet.store import google as google_store


class SaveLinkOut(api.Out):
    save_url: str


def _signer(request: web.Request, config: google_store.GoogleConfig) -> links.LinkSigner:
    """The merchant's link signer, made once per process and configuration."""
    cache = request.app[LINK_SIGNERS]
    merchant_id = config.program.merchant_id
    cached = cache.get(merchant_id)
    if cached is None or cached[0] != config.updated_at:
        cached = (config.updated_at, links.LinkSigner(config.service_account))
        cache[merchant_id] = cached
    return cached[1]


def _answer(
    request: web.Request,
    config: google_store.GoogleConfig,
    *,
    loyalty: list[dict[str, object]] | None = None,
    offers: list[dict[str, object]] | None = None,
) -> web.Response:
    claim_set = links.claims(
        config.service_account.client_email,
        iat=int(request.app[CLOCK].now().timestamp()),
        origins=[request.app[SETTINGS].base_url],
        loyalty_objects=loyalty or (),
        offer_objects=offers or (),
    )
    return api.json(SaveLinkOut(save_url=_signer(request, config).save_url(claim_set)))


async def _first_time(conn: asyncpg.Connection, merchant_id: int, shopper_id: int) -> None:
    # Google must have the object's class before the link can be saved: the updater
    # inserts it (and the object) from this queue row.
    await google_store.queue_update(conn, merchant_id, shopper_id, "save_link")


async def loyalty_link(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        config = await google_store.required_config(conn, p.merchant_id)
        # The card shows the shopper's referral code: make it if it is not made yet.
        await referrals.code_for(conn, p.merchant_id, p.shopper_id, now)
        row = await google_store.ensure_loyalty_card(conn, config.program, p.shopper_id, now)
        if row.synced_hash is None:
            await _first_time(conn, p.merchant_id, p.shopper_id)
    return _answer(request, config, loyalty=[objects.loyalty_object(row.card)])


async def coupon_link(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    coupon_id = api.path_id(request, "coupon_id")
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        # Someone else's coupon is as absent as one that does not exist, configured or not.
        if not await google_store.coupon_is_shoppers(conn, p.merchant_id, p.shopper_id, coupon_id):
            raise errors.NotFound("no such coupon")
        config = await google_store.required_config(conn, p.merchant_id)
        row = await google_store.ensure_offer_card(
            conn, config.program, p.shopper_id, coupon_id, now, live_only=True
        )
        if row is None:
            raise errors.NotFound("no such coupon")
        if row.synced_hash is None:
            await _first_time(conn, p.merchant_id, p.shopper_id)
    return _answer(request, config, offers=[objects.offer_object(row.card, now)])


_LINK = {200: Reply(description="The save link", model=SaveLinkOut)}

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/passes/google/loyalty",
        handler=loyalty_link,
        tag="wallet",
        summary='A "Save to Google Wallet" link for the shopper\'s loyalty card',
        description="`save_url` is https://pay.google.com/gp/v/save/<jwt>: an RS256 JWT signed "
        "with the merchant's service-account key, with claims iss (the service account's "
        'e-mail), aud "google", typ "savetowallet", iat, origins (GATEWAY_PUBLIC_URL) and '
        "a payload whose loyaltyObjects[0] is the card: id <issuerId>.loyalty-..., "
        "loyaltyPoints.balance.int the points, secondaryLoyaltyPoints the tier, the member "
        "barcode, the coupons on Google as linkedOfferIds and up to 10 nearest stores as "
        "merchantLocations. The card's id never changes. 409 google_wallet_not_configured "
        "until an operator runs `gateway wallet google-configure`.",
        roles=frozenset({Role.SHOPPER}),
        replies=_LINK,
        errors=(404, 409),
    ),
    Endpoint(
        method="GET",
        path="/v1/passes/google/coupons/{coupon_id}",
        handler=coupon_link,
        tag="wallet",
        summary='A "Save to Google Wallet" link for one of the shopper\'s live coupons',
        description="The same JWT, with payload.offerObjects[0] the coupon: its code as the "
        "barcode (in the offer's format), validTimeInterval from issue to expiry and the "
        "offer's stores as merchantLocations. The OfferObject becomes COMPLETED when the "
        "coupon is redeemed and EXPIRED when it expires, as the Apple coupon pass is "
        "voided. 404 for a coupon that is not the shopper's, 409 coupon_not_live for a "
        "redeemed or expired one, 409 google_wallet_not_configured without an issuer.",
        roles=frozenset({Role.SHOPPER}),
        replies=_LINK,
        errors=(404, 409),
    ),
]

LINK_SIGNERS = web.AppKey("google_link_signers", dict[int, tuple[object, links.LinkSigner]])
