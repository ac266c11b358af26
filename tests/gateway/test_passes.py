"""The loyalty pass over HTTP: signed with the merchant's (development) certificates, the
same serial and token across updates, points that follow purchases, and 304s."""

from __future__ import annotations

import email.utils
import io
import json
import shutil
import zipfile
from pathlib import Path

import asyncpg
import pytest

from tests.gateway.conftest import Shop
from tests.wallet.test_passes import verify
from wallet import passes


def _files(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_the_loyalty_pass_is_signed_stable_and_current(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    token = shop.token("shopper")
    r = await shop.api.get("/v1/passes/loyalty", token=token)
    assert r.status == 200, r.body
    assert r.headers["Content-Type"] == "application/vnd.apple.pkpass"
    files = _files(r.body)
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
    buy = await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={
            "shopper_id": str(shop.tenant.shopper_id),
            "store_id": str(shop.tenant.store_ids[0]),
            "amount": 42,
        },
        headers={"Idempotency-Key": "pass-1"},
    )
    assert buy.status == 201
    await conn.execute("UPDATE points_ledger SET created_at = created_at + interval '2 seconds'")
    r2 = await shop.api.get(
        "/v1/passes/loyalty", token=token, headers={"If-Modified-Since": modified}
    )
    assert r2.status == 200
    assert email.utils.parsedate_to_datetime(
        r2.headers["Last-Modified"]
    ) > email.utils.parsedate_to_datetime(modified)
    second = json.loads(_files(r2.body)["pass.json"])
    assert second["storeCard"]["primaryFields"][0]["value"] == 42
    assert second["storeCard"]["headerFields"][0]["value"] == "Bronze"
    # The serial number and authentication token never change.
    assert (second["serialNumber"], second["authenticationToken"]) == (
        first["serialNumber"],
        first["authenticationToken"],
    )
    assert await conn.fetchval("SELECT count(*) FROM passes") == 1
