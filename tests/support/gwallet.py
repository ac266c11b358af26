"""Google Wallet helpers for the gateway tests: a merchant configured with a development
service account, save links read back, and the local Google stand-in with an updater."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateway import db
from gateway.delivery import googlepush
from tests.support.google_peer import GoogleStandIn, public_key_of, verify_rs256
from tests.support.proc import free_port
from tests.support.shop import Shop
from wallet.google import account, links, objects
from wallet.store import google as google_store

ISSUER = "3388000000022123456"
# The gateway's public address as Google would reach it (classes name its callback URL).
PUBLIC_URL = "https://gateway.example.com"


async def configure(
    conn: asyncpg.Connection,
    merchant_id: int,
    issuer_id: str = ISSUER,
    info: dict[str, str] | None = None,
) -> dict[str, str]:
    """Give the merchant an issuer with a development service account (`info`, else a fresh
    one); its key file."""
    info = info or account.dev_service_account()
    program = objects.Program(
        issuer_id=issuer_id,
        merchant_id=merchant_id,
        issuer_name="Corner Coffee",
        program_name="Corner Coffee Rewards",
        logo_url="https://example.com/logo.png",
        background_color="#6f4e37",
    )
    await google_store.put_config(conn, program, account.parse(json.dumps(info)))
    return info


def read_link(save_url: str, info: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a save link, its signature checked with the account's public key."""
    assert save_url.startswith(links.SAVE_URL)
    return verify_rs256(save_url.removeprefix(links.SAVE_URL), public_key_of(info))


@contextlib.asynccontextmanager
async def google(
    shop: Shop, info: dict[str, str]
) -> AsyncIterator[tuple[GoogleStandIn, googlepush.GooglePusher]]:
    """The Google stand-in, knowing the account, and an updater aimed at it."""
    stand_in = GoogleStandIn(issuer_id=ISSUER)
    stand_in.register(info)
    await stand_in.start(free_port())
    pusher = googlepush.GooglePusher(
        shop.app[db.POOL],
        base_url=stand_in.wallet_url,
        token_uri=stand_in.token_uri,
        public_url=PUBLIC_URL,
        clock_=shop.clock,
    )
    try:
        yield stand_in, pusher
    finally:
        await pusher.stop()
        await stand_in.close()


async def run_due(conn: asyncpg.Connection, pusher: googlepush.GooglePusher) -> int:
    """Make every waiting Google row due now (skip the backoff) and run one round."""
    await conn.execute("UPDATE pass_updates SET available_at = now() WHERE done_at IS NULL")
    return await pusher.run_once()
