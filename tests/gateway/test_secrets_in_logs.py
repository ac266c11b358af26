"""Secrets never reach the logs nor the metrics: a full flow against `gateway serve` at
DEBUG level, then the log and a scrape of /metrics are searched for every token, key,
password and code the flow used (the Google service-account key included; the Google
updater's own logs are checked in tests/gateway/test_google_wallet.py)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import parser

from gateway.demo.localpush import PushService
from tests.support import proc
from tests.support.tenants import Tenant

PASSWORD = "Db-Pa55word-never-logged"


def _with_password(url: str) -> str:
    # Trust authentication ignores it, so the server still connects.
    return re.sub(r"^(postgres(?:ql)?://[^:@/]+)(:[^@]*)?@", rf"\1:{PASSWORD}@", url)


async def test_a_full_flow_logs_no_secret(
    database_url: str, tenant_a: Tenant, tmp_path: Path
) -> None:
    vapid = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    environ = proc.env(
        _with_password(database_url),
        tmp_path,
        GATEWAY_LOG_LEVEL="DEBUG",
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_VAPID_PRIVATE_KEY=vapid.decode(),
        GATEWAY_WEBPUSH_ALLOW_HTTP="1",
        GATEWAY_PASS_PUSHER="0",
    )
    log_file = tmp_path / "serve.log"
    served = proc.Served(proc.free_port(), environ, log_file=log_file)
    secrets: dict[str, str] = {"database password": PASSWORD}
    for role, token in tenant_a.tokens.items():
        secrets[f"{role} token"] = token
        secrets[f"{role} token secret"] = token.split("_", 3)[3]
    # A Google Wallet issuer, configured from the command line with a service-account file.
    sa_file = tmp_path / "service-account.json"
    code, out, err = await proc.run(
        "wallet", "google-dev-account", "--out", str(sa_file), environ=environ
    )
    assert code == 0, err
    sa = json.loads(sa_file.read_text())
    secrets["Google service-account key"] = "".join(sa["private_key"].splitlines()[1:-1])[20:60]
    code, out, err = await proc.run(
        "wallet", "google-configure", "--merchant", str(tenant_a.merchant_id),
        "--issuer-id", "3388000000022000001", "--service-account", str(sa_file),
        environ=environ,
    )  # fmt: skip
    assert code == 0, err
    assert secrets["Google service-account key"] not in out + err
    await served.start()
    try:
        await served.wait_ready()
        async with aiohttp.ClientSession(base_url=served.url) as http, PushService() as push:

            async def call(method: str, path: str, token: str, body: object = None) -> object:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k-" + path}
                async with http.request(method, path, json=body, headers=headers) as r:
                    return await r.json() if r.content_type.endswith("json") else await r.read()

            for token in tenant_a.tokens.values():
                await call("GET", "/v1/auth/whoami", token)
            await call("GET", "/v1/auth/whoami", "gw_shopper_0123456789abcdef_" + "x" * 43)
            made = await call(
                "POST", "/v1/shoppers", tenant_a.tokens["app"], {"marketing_consent": True}
            )
            assert isinstance(made, dict)
            shopper = made["token"]
            secrets["new shopper token"] = shopper
            sub = push.subscribe()
            secrets["push auth secret"] = sub.auth
            await call("POST", "/v1/push-subscriptions", shopper, sub.subscription_info())
            link = await call("GET", "/v1/passes/google/loyalty", shopper)
            assert isinstance(link, dict) and link["save_url"].startswith("https://pay.google.com/")
            pass_bytes = await call("GET", "/v1/passes/loyalty", shopper)
            assert isinstance(pass_bytes, bytes)
            with zipfile.ZipFile(io.BytesIO(pass_bytes)) as zf:
                card = json.loads(zf.read("pass.json"))
            secrets["ApplePass token"] = card["authenticationToken"]
            reg = (
                f"/wallet/v1/devices/dev1/registrations/{card['passTypeIdentifier']}/"
                f"{card['serialNumber']}"
            )
            for auth in (card["authenticationToken"], "wrong-token-0123456789"):
                async with http.post(
                    reg,
                    json={"pushToken": "ab" * 32},
                    headers={"Authorization": f"ApplePass {auth}"},
                ) as r:
                    assert r.status in (201, 401)
            secrets["coupon code"] = tenant_a.coupon_code
            await call(
                "POST",
                "/v1/redemptions",
                tenant_a.tokens["pos"],
                {"code": tenant_a.coupon_code, "store_id": str(tenant_a.store_ids[0])},
            )
            async with http.get("/metrics") as r:
                assert r.status == 200
                scraped = await r.text()
    finally:
        await served.stop()
    log = log_file.read_text(errors="replace")
    # It did log, in detail: start-up settings, and every request with its path.
    assert "/v1/redemptions" in log and "/v1/passes/loyalty" in log and "database" in log
    assert "/v1/passes/google/loyalty" in log
    pem_body = "".join(vapid.decode().splitlines()[1:-1])
    secrets["VAPID private key"] = pem_body[20:60]
    leaked = {name for name, value in secrets.items() if value and value in log}
    assert not leaked, leaked
    # The flow moved the metrics, and none of its secrets, ids or addresses is a label.
    assert 'route="/v1/redemptions"' in scraped and "gateway_redemptions_total" in scraped
    leaked = {name for name, value in secrets.items() if value and value in scraped}
    assert not leaked, leaked
    for family in parser.text_string_to_metric_families(scraped):
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert not label.endswith("_id"), sample
                assert sub.endpoint not in value and shopper not in value, sample
                assert label != "route" or not re.search(r"/\d", value), sample
