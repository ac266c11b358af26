"""The gateway's aes128gcm encryption against the reference implementation (http_ece, which
pywebpush calls), and the local push service's decryption against it too."""

from __future__ import annotations

import os
from typing import Any

import http_ece
import pytest
import pywebpush
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.delivery import ece, webpush
from gateway.demo import localpush

PAYLOADS = [b"x", b'{"delivery_id": "d", "title": "20% off"}', os.urandom(3993)]


def _subscriber() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, point, os.urandom(16)


@pytest.mark.parametrize("payload", PAYLOADS, ids=["1 byte", "json", "3993 bytes"])
def test_the_bytes_equal_http_ece_given_the_same_key_and_salt(payload: bytes) -> None:
    _, point, auth = _subscriber()
    sender_key = ec.generate_private_key(ec.SECP256R1())
    salt = os.urandom(16)
    ours = ece.encrypt(ece.Recipient(point, auth), payload, private_key=sender_key, salt=salt)
    reference = http_ece.encrypt(
        payload,
        salt=salt,
        private_key=sender_key,
        dh=point,
        auth_secret=auth,
        version="aes128gcm",
    )
    assert ours == reference


def test_the_bytes_equal_pywebpush_given_the_same_key_and_salt(monkeypatch: Any) -> None:
    _, point, auth = _subscriber()
    sender_key = ec.generate_private_key(ec.SECP256R1())
    salt = os.urandom(16)
    monkeypatch.setattr(pywebpush.ec, "generate_private_key", lambda *_a, **_k: sender_key)
    monkeypatch.setattr(http_ece.os, "urandom", lambda n: salt[:n])
    target = webpush.Target(
        endpoint="https://push.example/x", p256dh=webpush.b64url(point), auth=webpush.b64url(auth)
    )
    info = {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
    reference = pywebpush.WebPusher(info).encode(PAYLOADS[1], "aes128gcm")["body"]
    ours = ece.encrypt(
        webpush.Sender.recipient(target), PAYLOADS[1], private_key=sender_key, salt=salt
    )
    assert ours == reference


@pytest.mark.parametrize("payload", PAYLOADS, ids=["1 byte", "json", "3993 bytes"])
def test_http_ece_and_the_local_push_service_decrypt_what_the_sender_encrypts(
    payload: bytes,
) -> None:
    private, point, auth = _subscriber()
    target = webpush.Target(
        endpoint="https://push.example/x", p256dh=webpush.b64url(point), auth=webpush.b64url(auth)
    )
    body = webpush.Sender.encrypt(target, payload)
    assert len(body) <= 4096
    assert (
        http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm")
        == payload
    )
    assert localpush.decrypt(body, private, auth) == payload
    # A fresh key and salt for every message, as RFC 8291 requires.
    again = webpush.Sender.encrypt(target, payload)
    assert again[:16] != body[:16] and again[21:86] != body[21:86]


@pytest.mark.parametrize("rs", [18, 25, 4096])
def test_the_local_push_service_reads_what_http_ece_writes(rs: int) -> None:
    private, point, auth = _subscriber()
    payload = os.urandom(100)
    body = http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=point,
        auth_secret=auth,
        version="aes128gcm",
        rs=rs,
    )
    assert localpush.decrypt(body, private, auth) == payload


def test_the_local_push_service_refuses_tampered_and_misaddressed_bodies() -> None:
    private, point, auth = _subscriber()
    body = ece.encrypt(ece.Recipient(point, auth), b"hello")
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(ValueError, match="authenticate"):
        localpush.decrypt(tampered, private, auth)
    with pytest.raises(ValueError, match="authenticate"):
        localpush.decrypt(body, private, os.urandom(16))
    other, _, _ = _subscriber()
    with pytest.raises(ValueError, match="authenticate"):
        localpush.decrypt(body, other, auth)
    with pytest.raises(ValueError, match="shorter"):
        localpush.decrypt(body[:20], private, auth)


def test_unusable_subscription_keys_are_refused_before_sending() -> None:
    bad_point = webpush.b64url(b"\x04" + b"\x01" * 64)  # not on the curve
    target = webpush.Target(endpoint="https://push.example/x", p256dh=bad_point, auth="AAAA")
    with pytest.raises(webpush.BadSubscription):
        webpush.Sender.encrypt(target, b"x")
