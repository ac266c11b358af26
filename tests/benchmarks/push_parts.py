"""The parts of one Web Push, timed one by one in process: what the RFC makes us compute
(a fresh ECDH key pair, the shared secret, HKDF, AES-GCM) and what it does not (the VAPID
header, the HTTP request), each next to the way it was done before.

Run alone: python tests/benchmarks/push_parts.py [--base-url URL --subscription-file F]
(without a push service, the HTTP rows are left out). Thread CPU time, best of rounds.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PAYLOAD = (
    b'{"delivery_id":"8b0c5f0e-3f0e-4c1e-9d57-1d7f1c9e2b11","offer_id":"17","title":'
    b'"20% off a hot coffee","body":"Warm up with us","image_url":null,"coupon":{"code":'
    b'"ABCD-EFGH-JK","expires_at":"2026-12-03T18:30:00+00:00"},"open_url":'
    b'"https://gw.example/v1/inbox/8b0c5f0e-3f0e-4c1e-9d57-1d7f1c9e2b11/open"}'
)


def per_call(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """Best thread-CPU microseconds per call over `rounds` rounds of `n` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - started) / n)
    return 1e6 * best


def crypto_parts(n: int = 2000) -> dict[str, float]:
    """µs per message of each step of RFC 8291, and of the whole encryption two ways."""
    import http_ece
    import pywebpush
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from gateway.delivery import ece, webpush

    curve = ec.SECP256R1()
    browser = ec.generate_private_key(curve)
    point = browser.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)
    target = webpush.Target(
        endpoint="https://push.example/x", p256dh=webpush.b64url(point), auth=webpush.b64url(auth)
    )
    info = {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
    recipient = ece.Recipient(point, auth)
    key = ec.generate_private_key(curve)
    secret = key.exchange(ec.ECDH(), recipient.public_key)
    aead = AESGCM(os.urandom(16))

    def keygen() -> bytes:
        k = ec.generate_private_key(curve)
        return k.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def hkdf() -> bytes:
        # The four HMACs of RFC 8291's key schedule: IKM, PRK, CEK and nonce.
        prk_key = hmac.digest(auth, secret, "sha256")
        ikm = hmac.digest(prk_key, b"WebPush: info\x00" + point + point + b"\x01", "sha256")
        prk = hmac.digest(auth, ikm, "sha256")
        hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", "sha256")
        return hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", "sha256")

    return {
        "ecdh_keygen": per_call(keygen, n),
        "ecdh_exchange": per_call(lambda: key.exchange(ec.ECDH(), recipient.public_key), n),
        "subscription_key": per_call(lambda: webpush.Sender.recipient(target), n),
        "hkdf": per_call(hkdf, n),
        "aes_gcm": per_call(lambda: aead.encrypt(b"\x00" * 12, PAYLOAD + b"\x02", None), n),
        "encrypt": per_call(lambda: webpush.Sender.encrypt(target, PAYLOAD), n),
        "encrypt_http_ece": per_call(
            lambda: http_ece.encrypt(
                PAYLOAD,
                private_key=ec.generate_private_key(curve),
                dh=point,
                auth_secret=auth,
                version="aes128gcm",
            ),
            n,
        ),
        "encrypt_pywebpush": per_call(
            lambda: pywebpush.WebPusher(info).encode(PAYLOAD, "aes128gcm"), n
        ),
    }


def vapid_parts(n: int = 2000) -> dict[str, float]:
    """The VAPID header: taken from the per-origin cache, against signing it every time."""
    import py_vapid

    from gateway.delivery import webpush

    vapid = py_vapid.Vapid02()
    vapid.generate_keys()
    sender = webpush.Sender(webpush.VapidKey(vapid=vapid, public_key="k"), subject="mailto:a@b.c")
    endpoint = "https://push.example/push/abc"
    sender.authorization(endpoint)
    claims = {"aud": "https://push.example", "exp": int(time.time()) + 3600, "sub": "mailto:a@b.c"}
    return {
        "vapid_cached": per_call(lambda: sender.authorization(endpoint), n),
        "vapid_signed": per_call(lambda: vapid.sign(dict(claims)), max(1, n // 10)),
    }


async def _http_rounds(base_url: str, sub: dict[str, Any], n: int, rounds: int) -> dict[str, float]:
    """Client CPU per POST of a ready body to the push service: our pooled client against
    an aiohttp session (both keep-alive, 32 at a time)."""
    import aiohttp
    import py_vapid

    from gateway.delivery import pushhttp, webpush

    vapid = py_vapid.Vapid02()
    vapid.generate_keys()
    sender = webpush.Sender(webpush.VapidKey(vapid=vapid, public_key="k"), subject="mailto:a@b.c")
    target = webpush.Target(
        endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
    )
    body = webpush.Sender.encrypt(target, PAYLOAD)
    headers = {
        "TTL": "600",
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "Urgency": "normal",
        "Authorization": sender.authorization(target.endpoint),
    }
    client = pushhttp.Client(per_origin=32)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))

    async def ours() -> None:
        answer = await client.post(target.endpoint, body, headers)
        assert answer.status == 201, answer

    async def theirs() -> None:
        async with session.post(target.endpoint, data=body, headers=headers) as resp:
            await resp.read()
            assert resp.status == 201

    best = {"http": float("inf"), "http_aiohttp": float("inf")}
    try:
        for _ in range(rounds):
            for name, fn in (("http", ours), ("http_aiohttp", theirs)):
                started = time.thread_time()
                for _ in range(n // 32):
                    await asyncio.gather(*(fn() for _ in range(32)))
                spent = (time.thread_time() - started) / (32 * (n // 32))
                best[name] = min(best[name], 1e6 * spent)
    finally:
        await client.close()
        await session.close()
    return best


def http_parts(
    base_url: str, sub: dict[str, Any], n: int = 1024, rounds: int = 3
) -> dict[str, float]:
    import uvloop

    return uvloop.run(_http_rounds(base_url, sub, n, rounds))


def main() -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url")
    parser.add_argument("--subscription-file", help="JSON of one PushSubscription")
    args = parser.parse_args()
    parts = {**crypto_parts(), **vapid_parts()}
    if args.base_url and args.subscription_file:
        sub = json.loads(Path(args.subscription_file).read_text())
        parts.update(http_parts(args.base_url, sub))
    for name, value in parts.items():
        print(f"{name:20s} {value:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
