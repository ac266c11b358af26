"""A Google Wallet callback sender for the tests: it makes test root keys, an intermediate
key signed by a root key, and signs save and delete messages the way Google does
(ECv2SigningOnly: ECDSA P-256 with SHA-256, DER, base64, over length-prefixed strings).

The signing follows Google's published description of the protocol, independently of the
gateway's verifier: `_signed` builds the byte string here again on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDER = "GooglePayPasses"
PROTOCOL = "ECv2SigningOnly"


def _millis(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _signed(*parts: str) -> bytes:
    return b"".join(len(p.encode()).to_bytes(4, "little") + p.encode() for p in parts)


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@dataclass
class GoogleSender:
    """Google's side of callbacks, for one moment `now` (keys expire relative to it)."""

    now: dt.datetime
    root: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    intermediate: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    root_expires: dt.timedelta = dt.timedelta(days=365)
    intermediate_expires: dt.timedelta = dt.timedelta(days=7)

    def root_keys(self, *extra: ec.EllipticCurvePrivateKey) -> str:
        """The key list JSON, as Google's keys URL serves it (plus a key of another protocol,
        which must be left out)."""
        keys: list[dict[str, Any]] = [
            {
                "keyValue": _spki(self.root),
                "protocolVersion": PROTOCOL,
                "keyExpiration": str(_millis(self.now + self.root_expires)),
            },
            {"keyValue": _spki(ec.generate_private_key(ec.SECP256R1())), "protocolVersion": "ECv1"},
        ]
        keys += [{"keyValue": _spki(k), "protocolVersion": PROTOCOL} for k in extra]
        return json.dumps({"keys": keys})

    def message(
        self,
        *,
        issuer_id: str,
        object_id: str,
        event: str = "save",
        nonce: str | None = None,
        expires_in: dt.timedelta = dt.timedelta(minutes=5),
        class_id: str | None = None,
    ) -> dict[str, Any]:
        """The signed message's fields, before signing."""
        return {
            "classId": class_id or f"{issuer_id}.offers",
            "objectId": object_id,
            "expTimeMillis": _millis(self.now + expires_in),
            "eventType": event,
            "nonce": nonce or secrets.token_hex(16),
        }

    def envelope(
        self,
        message: dict[str, Any],
        *,
        recipient_id: str,
        root: ec.EllipticCurvePrivateKey | None = None,
        signer: ec.EllipticCurvePrivateKey | None = None,
        key_expires_in: dt.timedelta | None = None,
    ) -> dict[str, Any]:
        """The body Google POSTs: the intermediate key signed by `root` (default: ours), the
        message signed by `signer` (default: the intermediate key) for `recipient_id`."""
        life = self.intermediate_expires if key_expires_in is None else key_expires_in
        expires = self.now + life
        signed_key = json.dumps(
            {"keyValue": _spki(self.intermediate), "keyExpiration": str(_millis(expires))}
        )
        signed_message = json.dumps(message)
        return {
            "signature": _sign(
                signer or self.intermediate, _signed(SENDER, recipient_id, PROTOCOL, signed_message)
            ),
            "intermediateSigningKey": {
                "signedKey": signed_key,
                "signatures": [_sign(root or self.root, _signed(SENDER, PROTOCOL, signed_key))],
            },
            "protocolVersion": PROTOCOL,
            "signedMessage": signed_message,
        }

    def callback(self, *, issuer_id: str, object_id: str, **kw: Any) -> dict[str, Any]:
        """A valid callback body for the issuer's object (`event`, `nonce` as `message`)."""
        return self.envelope(
            self.message(issuer_id=issuer_id, object_id=object_id, **kw), recipient_id=issuer_id
        )
