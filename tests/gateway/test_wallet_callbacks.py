"""Google Wallet callbacks over HTTP, from a sender that signs as Google does, and Apple
Wallet registrations: both show in the funnel's saved-to-wallet stage, by wallet.
Callbacks name the objects the gateway issued (looked up, not parsed); forged, expired,
unsigned and replayed callbacks change nothing; a merchant without Google Wallet answers
409, as its save links do."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import app as app_mod
from gateway import clock
from tests.support import gwallet
from tests.support.client import ApiClient, Reply
from tests.support.google_callbacks import GoogleSender
from tests.support.openapi_check import SpecChecker
from tests.support.shop import make_settings
from tests.support.tenants import Tenant
from tests.support.wallet import pass_files, register
from wallet.store import saves

ISSUER = gwallet.ISSUER


@dataclass
class Wallets:
    api: ApiClient
    google: GoogleSender
    tenant: Tenant
    url: str
    info: dict[str, str]  # the merchant's (development) service account

    async def object_id(self, what: str, tenant: Tenant | None = None) -> str:
        """The object a save link names: `loyalty`, or `coupons/<id>`."""
        r = await self.api.get(
            f"/v1/passes/google/{what}", token=(tenant or self.tenant).tokens["shopper"]
        )
        assert r.status == 200, r.body
        payload = gwallet.read_link(r.json["save_url"], self.info)[1]["payload"]
        return str(next(iter(payload.values()))[0]["id"])

    async def coupon(self) -> str:
        return await self.object_id(f"coupons/{self.tenant.coupon_id}")

    async def send(self, body: Any, path: str | None = None) -> Reply:
        return await self.api.post(path or self.url, json=body)

    async def funnel(self) -> dict[str, Any]:
        r = await self.api.get(
            f"/v1/reports/offers/{self.tenant.offer_id}", token=self.tenant.tokens["reviewer"]
        )
        assert r.status == 200, r.body
        return dict(r.json["funnel"])


@pytest.fixture
async def wallets(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path, spec: SpecChecker
) -> AsyncIterator[Wallets]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    google = GoogleSender(now=now)
    info = await gwallet.configure(conn, tenant_a.merchant_id)
    settings = make_settings(tmp_path, google_root_keys=google.root_keys())
    application = app_mod.create_app(settings, db_url=database_url, clock_=clock.FixedClock(now))
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield Wallets(
            api=ApiClient(client, spec),
            google=google,
            tenant=tenant_a,
            url=f"/v1/wallet/google/callback/{tenant_a.merchant_id}",
            info=info,
        )


async def _written(conn: asyncpg.Connection) -> tuple[int, ...]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM google_wallet_events), "
        "(SELECT count(*) FROM wallet_saves), "
        "(SELECT count(*) FROM offer_stats_delta WHERE metric LIKE 'saved:%' "
        "OR metric LIKE 'removed:%')"
    )
    assert row is not None
    return tuple(row)


async def test_saves_and_deletes_show_in_the_funnel_by_wallet(
    wallets: Wallets, conn: asyncpg.Connection
) -> None:
    coupon = await wallets.coupon()
    assert (await wallets.funnel())["saved"] == {
        "total": 0,
        "by_wallet": {"apple": 0, "google": 0},
        "removed": {"apple": 0, "google": 0},
    }
    r = await wallets.send(wallets.google.callback(issuer_id=ISSUER, object_id=coupon))
    assert (r.status, r.json) == (200, {"status": "recorded", "event": "save", "object_id": coupon})
    funnel = await wallets.funnel()
    assert funnel["saved"]["by_wallet"] == {"apple": 0, "google": 1}
    assert funnel["rates"]["saved_of_sent"] == 1 / funnel["sent"]
    # The shopper deletes it: still saved once, now removed; updates to it stop.
    deleted = "SELECT deleted_at FROM google_wallet_objects WHERE object_id = $1"
    assert await conn.fetchval(deleted, coupon) is None
    r = await wallets.send(wallets.google.callback(issuer_id=ISSUER, object_id=coupon, event="del"))
    assert r.json["status"] == "recorded"
    funnel = await wallets.funnel()
    assert funnel["saved"]["by_wallet"]["google"] == 1
    assert funnel["saved"]["removed"] == {"apple": 0, "google": 1}
    assert await saves.out_of_wallet(conn, "google", [coupon, "other"]) == {coupon}
    assert await conn.fetchval(deleted, coupon) == wallets.google.now
    # Saved again: counted once still, no longer removed, updates resume.
    await wallets.send(wallets.google.callback(issuer_id=ISSUER, object_id=coupon))
    funnel = await wallets.funnel()
    assert funnel["saved"]["total"] == 1
    assert funnel["saved"]["removed"]["google"] == 0
    assert await saves.out_of_wallet(conn, "google", [coupon]) == set()
    assert await conn.fetchval(deleted, coupon) is None
    events = await conn.fetch("SELECT event, object_id, merchant_id FROM google_wallet_events")
    assert [e["event"] for e in events] == ["save", "del", "save"]
    # The loyalty card is tracked too; it is no coupon, so the funnel does not change.
    card = await wallets.object_id("loyalty")
    await wallets.send(wallets.google.callback(issuer_id=ISSUER, object_id=card, event="del"))
    assert await saves.out_of_wallet(conn, "google", [card]) == {card}
    assert await conn.fetchval(deleted, card) is not None
    assert (await wallets.funnel())["saved"]["total"] == 1


async def test_refused_callbacks_change_nothing(wallets: Wallets, conn: asyncpg.Connection) -> None:
    g = wallets.google
    coupon = await wallets.coupon()
    message = g.message(issuer_id=ISSUER, object_id=coupon)
    stranger = ec.generate_private_key(ec.SECP256R1())
    cases = [
        (g.envelope(message, recipient_id=ISSUER, signer=stranger), 401, "signature_invalid"),
        (g.envelope(message, recipient_id=ISSUER, root=stranger), 401, "signature_invalid"),
        (g.envelope(message, recipient_id="999"), 401, "signature_invalid"),
        (
            g.envelope(message, recipient_id=ISSUER, key_expires_in=-dt.timedelta(seconds=1)),
            401,
            "signing_key_expired",
        ),
        (
            g.callback(issuer_id=ISSUER, object_id=coupon, expires_in=-dt.timedelta(seconds=1)),
            400,
            "callback_expired",
        ),
        (
            {"protocolVersion": "ECv2SigningOnly", "signedMessage": json.dumps(message)},
            401,
            "callback_unsigned",
        ),
        (json.loads(json.dumps(message)), 400, "callback_malformed"),
        ([1, 2], 400, "callback_malformed"),
    ]
    for body, status, code in cases:
        r = await wallets.send(body)
        assert (r.status, r.error_code) == (status, code), r.body
    plain = {"Content-Type": "application/json"}
    r = await wallets.api.post(wallets.url, data=b"{not json", headers=plain)
    assert (r.status, r.error_code) == (400, "callback_malformed")
    assert await _written(conn) == (0, 0, 0)
    assert (await wallets.funnel())["saved"]["total"] == 0


async def test_a_merchant_without_google_wallet_answers_409(
    wallets: Wallets, conn: asyncpg.Connection, tenant_b: Tenant
) -> None:
    body = wallets.google.callback(issuer_id=ISSUER, object_id=await wallets.coupon())
    for path in (
        f"/v1/wallet/google/callback/{tenant_b.merchant_id}",  # no issuer configured
        "/v1/wallet/google/callback/999999999",  # no such merchant
        "/v1/wallet/google/callback/abc",
    ):
        r = await wallets.send(body, path)
        assert (r.status, r.error_code) == (409, "google_wallet_not_configured"), r.body
        assert "google-configure" in r.json["error"]["message"]
    # A callback signed for merchant A's issuer sent to merchant B's URL is refused too.
    await gwallet.configure(conn, tenant_b.merchant_id, issuer_id="4444")
    r = await wallets.send(body, f"/v1/wallet/google/callback/{tenant_b.merchant_id}")
    assert (r.status, r.error_code) == (401, "signature_invalid")
    assert await _written(conn) == (0, 0, 0)


async def test_replays_and_concurrent_duplicates_are_kept_once(
    wallets: Wallets, conn: asyncpg.Connection
) -> None:
    coupon = await wallets.coupon()
    body = wallets.google.callback(issuer_id=ISSUER, object_id=coupon, nonce="dup-1")
    answers = await asyncio.gather(*(wallets.send(body) for _ in range(8)))
    assert sorted(r.json["status"] for r in answers) == ["recorded"] + ["replayed"] * 7
    assert {r.status for r in answers} == {200}
    # Later retries of the same message: no second row either.
    assert (await wallets.send(body)).json["status"] == "replayed"
    # Several saves of one object at once, each with its own nonce: the coupon counts once.
    others = [
        wallets.google.callback(issuer_id=ISSUER, object_id=coupon, nonce=f"other-{i}")
        for i in range(6)
    ]
    assert {r.json["status"] for r in await asyncio.gather(*map(wallets.send, others))} == {
        "recorded"
    }
    assert await conn.fetchval("SELECT count(*) FROM google_wallet_events") == 7
    dup = "SELECT count(*) FROM google_wallet_events WHERE nonce = 'dup-1'"
    assert await conn.fetchval(dup) == 1
    assert (await wallets.funnel())["saved"]["by_wallet"] == {"apple": 0, "google": 1}


async def test_apple_wallet_registrations_count_as_saves(
    wallets: Wallets, conn: asyncpg.Connection
) -> None:
    t = wallets.tenant
    r = await wallets.api.get(f"/v1/passes/coupons/{t.coupon_id}", token=t.tokens["shopper"])
    assert r.status == 200, r.body
    card = json.loads(pass_files(r.body)["pass.json"])
    await register(_Shop(wallets.api), card, {"iphone": "a1" * 32, "watch": "b2" * 32})
    funnel = await wallets.funnel()
    assert funnel["saved"]["by_wallet"] == {"apple": 1, "google": 0}  # one coupon, two devices
    pt, serial = card["passTypeIdentifier"], card["serialNumber"]
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    base = f"/wallet/v1/devices/{{}}/registrations/{pt}/{serial}"
    # Both devices leave at once: the pass is out of Apple Wallet exactly once.
    gone = await asyncio.gather(
        *(wallets.api.delete(base.format(d), headers=auth) for d in ("iphone", "watch"))
    )
    assert [g.status for g in gone] == [200, 200]
    funnel = await wallets.funnel()
    assert funnel["saved"]["by_wallet"]["apple"] == 1
    assert funnel["saved"]["removed"]["apple"] == 1
    assert await saves.out_of_wallet(conn, "apple", [serial]) == {serial}


@dataclass
class _Shop:
    """What `tests.support.wallet.register` needs of a shop: its API client."""

    api: ApiClient


async def test_two_devices_leaving_at_once_take_the_pass_out_once(
    wallets: Wallets, conn: asyncpg.Connection, database_url: str
) -> None:
    """The second leaver's transaction waits on the pass's row lock until the first
    commits, then sees no device left: the pass is out of Apple Wallet, counted once."""
    t = wallets.tenant
    r = await wallets.api.get(f"/v1/passes/coupons/{t.coupon_id}", token=t.tokens["shopper"])
    card = json.loads(pass_files(r.body)["pass.json"])
    await register(_Shop(wallets.api), card, {"iphone": "a1" * 32, "watch": "b2" * 32})
    pass_id = await conn.fetchval("SELECT id FROM passes WHERE serial = $1", card["serialNumber"])
    other = await asyncpg.connect(database_url)
    now = dt.datetime.now(dt.UTC)
    leave = "DELETE FROM device_registrations WHERE device_library_id = $1"
    try:
        first = conn.transaction()
        await first.start()
        await conn.execute(leave, "iphone")
        await saves.apple_registrations_changed(conn, pass_id, now)

        async def second() -> None:
            async with other.transaction():
                await other.execute(leave, "watch")
                await saves.apple_registrations_changed(other, pass_id, now)

        task = asyncio.create_task(second())
        waiting = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
        while not task.done() and not await conn.fetchval(waiting, other.get_server_pid()):
            await asyncio.sleep(0.01)
        await first.commit()
        await task
    finally:
        await other.close()
    funnel = await wallets.funnel()
    assert funnel["saved"]["by_wallet"]["apple"] == 1
    assert funnel["saved"]["removed"]["apple"] == 1


def test_an_unreadable_fixed_key_list_stops_the_start(tmp_path: Path) -> None:
    from gateway.http.handlers import wallet_callbacks
    from gateway.settings import SettingsError

    for setting in (str(tmp_path / "missing.json"), '{"keys": 3}'):
        with pytest.raises(SettingsError, match="GATEWAY_GOOGLE_ROOT_KEYS"):
            wallet_callbacks.key_ring(make_settings(tmp_path, google_root_keys=setting))


async def test_objects_not_ours_are_logged_but_count_nowhere(
    wallets: Wallets, conn: asyncpg.Connection, tenant_b: Tenant
) -> None:
    """Another merchant's object, or an id the merchant never issued (the ids are random:
    one made of a coupon's number names nothing): kept in the log (it is a genuine message
    from Google), with no place in a wallet and no funnel figure."""
    await gwallet.configure(conn, tenant_b.merchant_id, info=wallets.info)
    theirs = await wallets.object_id(f"coupons/{tenant_b.coupon_id}", tenant_b)
    guessed = f"{ISSUER}.coupon-{wallets.tenant.coupon_id}"
    for object_id in (theirs, guessed, f"{ISSUER}.promo-7"):
        r = await wallets.send(wallets.google.callback(issuer_id=ISSUER, object_id=object_id))
        assert r.json["status"] == "recorded"
        r = await wallets.send(
            wallets.google.callback(issuer_id=ISSUER, object_id=object_id, event="del")
        )
        assert r.json["status"] == "recorded"
    assert await _written(conn) == (6, 0, 0)
    assert await conn.fetchval("SELECT count(*) FROM google_wallet_objects") == 1
    assert (
        await conn.fetchval(
            "SELECT deleted_at FROM google_wallet_objects WHERE object_id = $1", theirs
        )
        is None
    )
