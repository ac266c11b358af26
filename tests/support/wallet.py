"""Wallet helpers for the gateway tests: the files of a .pkpass, a purchase at the till,
device registrations as Wallet makes them, and a local APNs stand-in with a pass pusher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import db
from gateway.delivery import passpush
from tests.support import pkpass
from tests.support.apns_peer import ApnsStandIn
from tests.support.proc import free_port
from tests.support.shop import Shop

# The files of a .pkpass answer, by name.
pass_files = pkpass.unpack


@contextlib.asynccontextmanager
async def apns(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path, *, token_auth: bool = True
) -> AsyncIterator[tuple[ApnsStandIn, passpush.PassPusher]]:
    """A local APNs stand-in for the shop's pass type, and a pass pusher aimed at it.

    Token auth: the merchant gets an APNs key and the stand-in checks its JWTs.
    Certificate auth: no key, so the pusher presents the pass certificate, and the
    stand-in requires a client certificate from the merchant's (development) CA.
    """
    config = await conn.fetchrow("SELECT pass_type_id, team_id, wwdr_pem FROM wallet_configs")
    key = ec.generate_private_key(ec.SECP256R1())
    if token_auth:
        await conn.execute(
            "UPDATE wallet_configs SET apns_key_pem = $1, apns_key_id = 'KEY1234567', "
            "updated_at = now()",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        )
        client_ca = None
    else:
        client_ca = tmp_path / "client-ca.pem"
        client_ca.write_text(config["wwdr_pem"])
    stand_in = ApnsStandIn(
        directory=tmp_path,
        topic=config["pass_type_id"],
        key_id="KEY1234567",
        team_id=config["team_id"],
        public_key=key.public_key() if token_auth else None,
        client_ca=client_ca,
    )
    await stand_in.start(free_port())
    await conn.execute("UPDATE pass_updates SET done_at = now()")  # the fixture's own
    pusher = passpush.PassPusher(
        shop.app[db.POOL], base_url=stand_in.base_url, ca_file=str(stand_in.cert_path)
    )
    try:
        yield stand_in, pusher
    finally:
        await pusher.stop()
        await stand_in.close()


async def register(shop: Shop, card: dict[str, Any], devices: dict[str, str]) -> None:
    """Register each device (id -> push token) for the pass, as Wallet does."""
    pt, serial = card["passTypeIdentifier"], card["serialNumber"]
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    for device, push_token in devices.items():
        reg = f"/wallet/v1/devices/{device}/registrations/{pt}/{serial}"
        r = await shop.api.post(reg, json={"pushToken": push_token}, headers=auth)
        assert r.status == 201, r.body


async def purchase(shop: Shop, amount: float, key: str) -> None:
    buy = await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={
            "shopper_id": str(shop.tenant.shopper_id),
            "store_id": str(shop.tenant.store_ids[0]),
            "amount": amount,
        },
        headers={"Idempotency-Key": key},
    )
    assert buy.status == 201, buy.body
