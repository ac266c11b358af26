"""Signed passes are kept by version: an unchanged pass is answered from the cache, byte for
byte (from this process's memory, or from the database after a restart or on another
replica), and a changed one is built and signed again, once, however many devices ask."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from gateway.http.handlers import passes as pass_handlers
from tests.support.shop import Shop
from tests.support.wallet import pass_files, purchase


async def _fetch(shop: Shop, url: str, auth: dict[str, str]) -> bytes:
    r = await shop.api.get(url, headers=auth)
    assert r.status == 200, r.body
    return r.body


async def test_an_unchanged_pass_is_served_from_the_cache_and_a_changed_one_is_rebuilt(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    first = (await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))).body
    card = json.loads(pass_files(first)["pass.json"])
    url = f"/wallet/v1/passes/{card['passTypeIdentifier']}/{card['serialNumber']}"
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    memory = shop.app[pass_handlers.PASS_CACHE]
    stored = await conn.fetchrow("SELECT version, built_at FROM pass_cache")

    # The device fetches the same version: the bytes the shopper got, from memory.
    hits, built = memory.hits, memory.built
    assert await _fetch(shop, url, auth) == first
    assert (memory.hits, memory.built) == (hits + 1, built)

    # A process that never built it (memory emptied) answers the database's copy.
    memory.clear()
    assert await _fetch(shop, url, auth) == first
    assert memory.built == built
    assert await conn.fetchrow("SELECT version, built_at FROM pass_cache") == stored

    # A purchase changes the card: a new version, built and signed once, then cached.
    shop.clock.advance(seconds=5)
    await purchase(shop, 42, "cache-1")
    changed = await _fetch(shop, url, auth)
    assert changed != first and memory.built == built + 1
    assert (
        json.loads(pass_files(changed)["pass.json"])["storeCard"]["primaryFields"][0]["value"] == 42
    )
    now = await conn.fetchrow("SELECT version, built_at FROM pass_cache")
    assert now["version"] != stored["version"]
    assert await conn.fetchval("SELECT count(*) FROM pass_cache") == 1
    assert await _fetch(shop, url, auth) == changed
    assert await conn.fetchrow("SELECT version, built_at FROM pass_cache") == now


async def test_devices_fetching_a_new_version_at_once_share_one_build(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    first = (await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))).body
    card = json.loads(pass_files(first)["pass.json"])
    url = f"/wallet/v1/passes/{card['passTypeIdentifier']}/{card['serialNumber']}"
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    shop.clock.advance(seconds=5)
    await purchase(shop, 7, "cache-2")
    memory = shop.app[pass_handlers.PASS_CACHE]
    built = memory.built
    bodies = await asyncio.gather(*(_fetch(shop, url, auth) for _ in range(8)))
    assert memory.built == built + 1  # one signature for the eight devices
    assert len(set(bodies)) == 1
    kept = await conn.fetchval("SELECT body FROM pass_cache")
    assert bytes(kept) == bodies[0]
