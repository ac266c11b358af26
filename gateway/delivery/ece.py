"""RFC 8291 message encryption for Web Push (aes128gcm, RFC 8188), with `cryptography`
directly: the bytes http_ece (and so pywebpush) produce, without their per-call overheads.

Every message gets a fresh ephemeral P-256 key and a fresh salt, as the RFC requires;
what is per subscription (its decoded public point and auth secret) can be parsed once.
"""

from __future__ import annotations

import hmac
import os
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# One record holds the whole message: a push message is at most 4096 bytes.
RECORD_SIZE = 4096
_CURVE = ec.SECP256R1()
_ECDH = ec.ECDH()
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"
# salt (16) || rs (uint32) || idlen (65) || keyid: the sender's public point.
_RS_IDLEN = struct.pack("!IB", RECORD_SIZE, 65)


class Recipient:
    """A subscription's keys, parsed once: its P-256 point and its 16-byte auth secret."""

    __slots__ = ("auth", "point", "public_key")

    def __init__(self, point: bytes, auth: bytes) -> None:
        # Raises ValueError for a point that is not on the curve.
        self.public_key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
        self.point = point
        self.auth = auth


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 with one block of output (RFC 5869; length <= 32)."""
    prk = hmac.digest(salt, ikm, "sha256")
    return hmac.digest(prk, info, "sha256")[:length]


def encrypt(
    recipient: Recipient,
    payload: bytes,
    *,
    private_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """The aes128gcm body carrying `payload` to `recipient`.

    `private_key` and `salt` are for tests that compare bytes with the reference
    implementation; left out, they are fresh for this message.
    """
    key = private_key or ec.generate_private_key(_CURVE)
    salt = salt or os.urandom(16)
    sender_point = key.public_key().public_bytes(_X962, _UNCOMPRESSED)
    secret = key.exchange(_ECDH, recipient.public_key)
    ikm = _hkdf(recipient.auth, secret, _KEY_INFO + recipient.point + sender_point + b"\x01", 32)
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, _CEK_INFO, "sha256")[:16]
    nonce = hmac.digest(prk, _NONCE_INFO, "sha256")[:12]
    # The 0x02 delimiter marks the last (here: only) record; no further padding.
    sealed = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    return salt + _RS_IDLEN + sender_point + sealed
