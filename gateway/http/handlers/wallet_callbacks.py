"""Google Wallet's save and delete callbacks, one URL per merchant.

No API token: the ECv2SigningOnly signature authenticates the message, and it is signed for
the merchant's issuer id (wallet/google/callback.py). Each callback is kept once by its
nonce; a repeated nonce answers 200 `replayed` and changes nothing, since Google retries
until it gets a 2xx.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from gateway import db
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.delivery import googlepush
from gateway.http import api
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS, Settings, SettingsError
from wallet import errors as wallet_errors
from wallet.google import rootkeys
from wallet.store import google as google_store
from wallet.store import saves

ROOT_KEYS = web.AppKey("google_root_keys", rootkeys.KeyRing)


def key_ring(settings: Settings) -> rootkeys.KeyRing:
    """The process's root keys: the fixed list when one is set, else Google's URL."""
    fixed = None
    if settings.google_root_keys:
        try:
            fixed = rootkeys.fixed_keys(settings.google_root_keys)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"GATEWAY_GOOGLE_ROOT_KEYS: {exc}") from None
    return rootkeys.KeyRing(url=settings.google_root_keys_url, fixed=fixed)


class CallbackOut(api.Out):
    status: Literal["recorded", "replayed"]
    event: Literal["save", "del"]
    object_id: str


async def google_callback(request: web.Request) -> web.Response:
    merchant_id = api.as_id(request.match_info["merchant_id"])
    raw = await api.read_body(request, limit=request.app[SETTINGS].max_body_bytes)
    if merchant_id is None:
        # The same answer as for a merchant without an issuer, or none at all: nothing to
        # probe merchant ids with.
        raise wallet_errors.GoogleWalletNotConfigured()
    async with db.acquire(request.app[POOL]) as conn:
        config = await google_store.required_config(conn, merchant_id)
    now = request.app[CLOCK].now()
    issuer_id = config.program.issuer_id
    event = await request.app[ROOT_KEYS].verify(raw, recipient_id=issuer_id, now=now)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        outcome = await saves.record_google_event(
            conn, merchant_id=merchant_id, event=event, at=now
        )
    return api.json({"status": outcome, "event": event.event_type, "object_id": event.object_id})


ENDPOINTS = [
    Endpoint(
        method="POST",
        path=googlepush.CALLBACK_PATH,
        handler=google_callback,
        tag="wallet",
        summary="Google Wallet: a shopper saved or deleted a pass (signed callback)",
        description=(
            "The `callbackOptions.url` of the merchant's Google Wallet classes, which the "
            "gateway sets when `GATEWAY_PUBLIC_URL` is HTTPS. No "
            "token: the body is Google's ECv2SigningOnly message, checked against Google's "
            "root signing keys (`GATEWAY_GOOGLE_ROOT_KEYS_URL`), with the intermediate key's "
            "expiry, the message signature for the merchant's issuer id, and `expTimeMillis`. "
            "Each message is kept once by its `nonce`: a repeat answers 200 `replayed` and "
            "changes nothing. A refused message changes nothing: 400 `callback_malformed` or "
            "`callback_expired`, 401 `callback_unsigned`, `signature_invalid` or "
            "`signing_key_expired`; 409 `google_wallet_not_configured` when the merchant has "
            "no Google Wallet issuer (or does not exist), as for save links; 503 "
            "`root_keys_unavailable` while Google's keys cannot be fetched. The `objectId` is "
            "looked up among the objects the gateway issued for the merchant (an id it did "
            "not issue is kept in the log and counts nowhere). A delete takes the pass out of "
            "the wallet and stops its updates; a later save puts it back and queues an "
            "update so it catches up. Saves and deletes of coupon objects feed the funnel's "
            "saved-to-wallet stage."
        ),
        roles=None,
        body_schema={"type": "object", "description": "Google's signed callback message"},
        replies={200: Reply(description="Kept, or a repeat of a kept one", model=CallbackOut)},
        errors=(400, 401, 409),
    ),
]
