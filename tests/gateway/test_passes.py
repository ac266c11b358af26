"""The loyalty pass over HTTP: signed with the merchant's (development) certificates, the
same serial and token across updates, points that follow purchases, and 304s."""

from __future__ import annotations

import email.utils
import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.support.pkpass import verify
from tests.support.shop import Shop
from tests.support.wallet import apns, pass_files, purchase, register
from wallet import passes


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_the_loyalty_pass_is_signed_stable_and_current(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    token = shop.token("shopper")
    r = await shop.api.get("/v1/passes/loyalty", token=token)
    assert r.status == 200, r.body
    assert r.headers["Content-Type"] == "application/vnd.apple.pkpass"
    files = pass_files(r.body)
    config = await conn.fetchrow("SELECT pass_type_id, wwdr_pem, dev FROM wallet_configs")
    assert config["dev"] is True
    dev = passes.DevCertificates(ca_pem=config["wwdr_pem"].encode(), cert_pem=b"", key_pem=b"")
    assert "Verification successful" in verify(files, dev, tmp_path)
    first = json.loads(files["pass.json"])
    assert first["passTypeIdentifier"] == config["pass_type_id"]
    assert first["storeCard"]["primaryFields"][0]["value"] == 0
    assert len(first["locations"]) == 2  # the tenant's two stores

    # Same Last-Modified: 304. A purchase changes the points and the date.
    modified = r.headers["Last-Modified"]
    r304 = await shop.api.get(
        "/v1/passes/loyalty", token=token, headers={"If-Modified-Since": modified}
    )
    assert r304.status == 304
    shop.clock.advance(seconds=5)
    await purchase(shop, 42, "pass-1")
    await conn.execute("UPDATE points_ledger SET created_at = created_at + interval '2 seconds'")
    r2 = await shop.api.get(
        "/v1/passes/loyalty", token=token, headers={"If-Modified-Since": modified}
    )
    assert r2.status == 200
    assert email.utils.parsedate_to_datetime(
        r2.headers["Last-Modified"]
    ) > email.utils.parsedate_to_datetime(modified)
    second = json.loads(pass_files(r2.body)["pass.json"])
    assert second["storeCard"]["primaryFields"][0]["value"] == 42
    assert second["storeCard"]["headerFields"][0]["value"] == "Bronze"
    # The serial number and authentication token never change.
    assert (second["serialNumber"], second["authenticationToken"]) == (
        first["serialNumber"],
        first["authenticationToken"],
    )
    assert await conn.fetchval("SELECT count(*) FROM passes") == 1


async def test_the_passkit_flow_as_a_device_performs_it(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))
    card = json.loads(pass_files(r.body)["pass.json"])
    pt, serial, token = (
        card["passTypeIdentifier"],
        card["serialNumber"],
        card["authenticationToken"],
    )
    assert card["webServiceURL"].endswith("/wallet")
    device = "a1b2c3d4e5f6"
    reg = f"/wallet/v1/devices/{device}/registrations/{pt}/{serial}"
    auth = {"Authorization": f"ApplePass {token}"}
    bad = {"Authorization": f"ApplePass {token[:-1]}x"}
    body = {"pushToken": "f" * 64}
    assert (await shop.api.post(reg, json=body, headers=bad)).status == 401
    assert (await shop.api.post(reg, json=body)).status == 401
    assert (await shop.api.post(reg, json=body, headers=auth)).status == 201
    assert (await shop.api.post(reg, json=body, headers=auth)).status == 200
    other = f"/wallet/v1/devices/{device}/registrations/{pt}/NOSUCHSERIAL"
    assert (await shop.api.post(other, json=body, headers=auth)).status == 401

    listing = f"/wallet/v1/devices/{device}/registrations/{pt}"
    r = await shop.api.get(listing)
    assert r.json["serialNumbers"] == [serial]
    tag = r.json["lastUpdated"]
    assert isinstance(tag, str)
    assert (await shop.api.get(f"{listing}?passesUpdatedSince={tag}")).status == 204

    shop.clock.advance(seconds=5)
    await purchase(shop, 9, "kit-1")
    r = await shop.api.get(f"{listing}?passesUpdatedSince={tag}")
    assert r.json["serialNumbers"] == [serial] and int(r.json["lastUpdated"]) > int(tag)

    fetch = f"/wallet/v1/passes/{pt}/{serial}"
    assert (await shop.api.get(fetch, headers=bad)).status == 401
    r = await shop.api.get(fetch, headers=auth)
    assert r.status == 200 and r.headers["Content-Type"] == "application/vnd.apple.pkpass"
    assert (
        json.loads(pass_files(r.body)["pass.json"])["storeCard"]["primaryFields"][0]["value"] == 9
    )
    again = await shop.api.get(
        fetch, headers={**auth, "If-Modified-Since": r.headers["Last-Modified"]}
    )
    assert again.status == 304

    assert (await shop.api.delete(reg, headers=bad)).status == 401
    assert (await shop.api.delete(reg, headers=auth)).status == 200
    assert (await shop.api.get(listing)).status == 204
    r = await shop.api.post("/wallet/v1/log", json={"logs": ["Web service error: 500"]})
    assert r.status == 200


async def test_a_coupon_pass_expires_with_the_coupon_and_is_voided_once_redeemed(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await shop.offer(
        coupon={"discount": "20% off", "valid_minutes": 60, "barcode_format": "pdf417"}
    )
    sent = (await shop.walk_in()).json["offers"][0]
    url = f"/v1/passes/coupons/{sent['coupon']['id']}"
    r = await shop.api.get(url, token=shop.token("shopper"))
    assert r.status == 200, r.body
    card = json.loads(pass_files(r.body)["pass.json"])
    assert "coupon" in card
    assert card["expirationDate"] == sent["coupon"]["expires_at"]
    assert card["relevantDate"] and "voided" not in card
    assert card["barcode"]["message"] == sent["coupon"]["code"]
    assert card["barcode"]["format"] == "PKBarcodeFormatPDF417"
    assert [loc["relevantText"] for loc in card["locations"]] == [
        "Use your coupon at Alpha Coffee store 0"
    ]
    # Another shopper cannot have it.
    from tests.support.shop import enrol

    other = await enrol(conn, shop.tenant, "other")
    assert (await shop.api.get(url, token=other)).status == 404
    shop.clock.advance(seconds=5)
    assert (await shop.redeem(sent["coupon"]["code"], key="cp1")).status == 201
    # The device fetches the update through the web service: now voided.
    fetch = f"/wallet/v1/passes/{card['passTypeIdentifier']}/{card['serialNumber']}"
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    r = await shop.api.get(fetch, headers=auth)
    updated = json.loads(pass_files(r.body)["pass.json"])
    assert updated["voided"] is True
    assert updated["serialNumber"] == card["serialNumber"]


async def test_a_purchase_pushes_the_pass_update_to_every_registered_device(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))
    card = json.loads(pass_files(r.body)["pass.json"])
    await register(shop, card, {"dev1": "a1" * 32, "dev2": "b2" * 32, "dev3": "c3" * 32})
    async with apns(shop, conn, tmp_path) as (stand_in, pusher):
        stand_in.fail("c3" * 32, 410, "Unregistered")
        await purchase(shop, 3, "apns-1")
        assert await pusher.run_once() == 1
    assert sorted(p.token for p in stand_in.pushes) == ["a1" * 32, "b2" * 32]
    assert {p.topic for p in stand_in.pushes} == {card["passTypeIdentifier"]}
    # The unregistered device is forgotten; the update is done.
    devices = await conn.fetch("SELECT device_library_id FROM device_registrations ORDER BY 1")
    assert [d["device_library_id"] for d in devices] == ["dev1", "dev2"]
    assert await conn.fetchval("SELECT count(*) FROM pass_updates WHERE done_at IS NULL") == 0


async def test_certificate_auth_pushes_with_the_pass_certificate(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))
    card = json.loads(pass_files(r.body)["pass.json"])
    await register(shop, card, {"dev1": "d4" * 32})
    async with apns(shop, conn, tmp_path, token_auth=False) as (stand_in, pusher):
        await purchase(shop, 4, "cert-1")
        assert await pusher.run_once() == 1
        assert [p.token for p in stand_in.pushes] == ["d4" * 32]
        assert await conn.fetchval("SELECT count(*) FROM pass_updates WHERE done_at IS NULL") == 0

        # A certificate from another CA fails the handshake: no answer, so the update
        # is kept and retried later, never marked done.
        other = passes.dev_certificates("pass.other.example", "OTHERTEAM0")
        await conn.execute(
            "UPDATE wallet_configs SET cert_pem = $1, key_pem = $2, updated_at = now()",
            other.cert_pem.decode(),
            other.key_pem.decode(),
        )
        await purchase(shop, 5, "cert-2")
        assert await pusher.run_once() == 1
        row = await conn.fetchrow("SELECT done_at, last_error FROM pass_updates ORDER BY id DESC")
        assert row["done_at"] is None and row["last_error"].startswith("0 ")
    assert len(stand_in.pushes) == 1
