"""Shopper privacy: the export holds everything about the shopper and no secrets; erasure
removes the personal data and location history, keeps the reports' aggregates, and
leaves other shoppers alone."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from gateway.demo.localpush import PushService
from gateway.pingpath.pings import PINGS
from tests.support.gwallet import configure
from tests.support.shop import Shop, enrol
from tests.support.wallet import purchase

SECRET_KEYS = {"auth_token", "secret_hash", "p256dh", "auth", "push_token", "request_hash"}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


async def _activity(shop: Shop, conn: asyncpg.Connection) -> dict[str, Any]:
    """A shopper who pinged into an offer, redeemed it, bought, subscribed and got a pass
    (Apple's, and a Google save link)."""
    await shop.offer()
    sent = (await shop.walk_in()).json["offers"][0]
    assert (await shop.redeem(sent["coupon"]["code"], key="priv-1")).status == 201
    await purchase(shop, 12, "priv-buy")
    async with PushService() as push:
        sub = push.subscribe()
        r = await shop.api.post(
            "/v1/push-subscriptions", token=shop.token("shopper"), json=sub.subscription_info()
        )
        assert r.status == 201
    assert (await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))).status == 200
    await configure(conn, shop.tenant.merchant_id)
    r = await shop.api.get("/v1/passes/google/loyalty", token=shop.token("shopper"))
    assert r.status == 200
    return dict(sent)


async def test_the_export_holds_everything_about_the_shopper_and_no_secrets(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sent = await _activity(shop, conn)
    other = await enrol(conn, shop.tenant, "other")
    await shop.walk_in(token=other)

    r = await shop.api.get("/v1/me/export", token=shop.token("shopper"))
    assert r.status == 200, r.body
    assert "attachment" in r.headers["Content-Disposition"]
    data = r.json
    sid = str(shop.tenant.shopper_id)
    assert data["profile"]["id"] == sid and data["profile"]["name"] == "Ada"
    logged = await conn.fetchval("SELECT count(*) FROM pings WHERE shopper_id = $1", int(sid))
    assert len(data["location"]["pings"]) == logged
    assert [e["event"] for e in data["location"]["geofence_events"]] == ["enter"]
    assert data["location"]["last_known"]["visits"]
    assert sent["coupon"]["code"].replace("-", "") in {c["code"] for c in data["offers"]["coupons"]}
    assert any(d["outcome"] == "sent" for d in data["offers"]["decisions"])
    assert data["offers"]["redemptions"] and data["loyalty"]["purchases"]
    assert [e["points"] for e in data["loyalty"]["ledger"]] == [12]
    assert len(data["devices"]["push_subscriptions"]) == 1
    assert [p["kind"] for p in data["devices"]["wallet_passes"]] == ["loyalty"]
    assert [g["kind"] for g in data["devices"]["google_wallet_objects"]] == ["loyalty"]
    assert not _keys(data) & SECRET_KEYS, _keys(data) & SECRET_KEYS
    # The other shopper's walk-in is not in it.
    assert len(data["location"]["geofence_events"]) == 1
    assert json.dumps(data).count('"outcome"') == len(data["offers"]["decisions"])


async def test_erasure_removes_personal_data_and_keeps_the_aggregates(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sent = await _activity(shop, conn)
    other = await enrol(conn, shop.tenant, "other")
    await shop.walk_in(token=other)
    await shop.app[PINGS].log.flush()
    sid = shop.tenant.shopper_id
    assert await conn.fetchval("SELECT count(*) FROM pings WHERE shopper_id = $1", sid) > 0
    report = f"/v1/reports/offers/{sent['offer_id']}"
    before = (await shop.api.get(report, token=shop.token("reviewer"))).json
    kept = (
        "SELECT (SELECT count(*) FROM purchases WHERE shopper_id = $1), "
        "(SELECT count(*) FROM redemptions WHERE shopper_id = $1), "
        "(SELECT count(*) FROM points_ledger WHERE shopper_id = $1), "
        "(SELECT count(*) FROM decisions WHERE shopper_id = $1)"
    )
    accounts = tuple(await conn.fetchrow(kept, sid))
    assert accounts[0] == 1 and accounts[1] >= 1

    r = await shop.api.delete("/v1/me", token=shop.token("shopper"))
    assert r.status == 200, r.body
    removed = r.json["removed"]
    assert removed["pings"] > 0 and removed["geofence_events"] >= 1
    assert removed["push_subscriptions"] == 1 and removed["wallet_passes"] == 1
    assert removed["google_wallet_objects"] == 1
    assert removed["api_keys_revoked"] == 1

    tables = ("pings", "geofence_events", "shopper_geo", "push_subscriptions", "passes")
    for table in (*tables, "google_wallet_objects", "pass_updates"):
        n = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE shopper_id = $1", sid)
        assert n == 0, table
    row = await conn.fetchrow(
        "SELECT name, email, timezone, tags, marketing_consent, erased_at FROM shoppers "
        "WHERE id = $1",
        sid,
    )
    assert (row["name"], row["email"], row["timezone"], row["tags"]) == (None, None, None, [])
    assert row["marketing_consent"] is False and row["erased_at"] is not None
    # Accounting keeps the pseudonymous id; the reports do not move.
    assert tuple(await conn.fetchrow(kept, sid)) == accounts
    after = (await shop.api.get(report, token=shop.token("reviewer"))).json
    assert after["funnel"] == before["funnel"]
    # The token is gone at once; a second erasure cannot happen; the other shopper stays.
    assert (await shop.api.get("/v1/me", token=shop.token("shopper"))).status == 401
    assert (await shop.api.delete("/v1/me", token=shop.token("shopper"))).status == 401
    assert (await shop.api.get("/v1/me/export", token=other)).json["location"]["last_known"]
