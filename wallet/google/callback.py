"""Google Wallet save and delete callbacks: checking the ECv2SigningOnly signatures.

Google POSTs a JSON envelope: `protocolVersion` ("ECv2SigningOnly"), `signature`,
`intermediateSigningKey` (`signedKey`, a JSON string holding `keyValue` and
`keyExpiration`, and `signatures`) and `signedMessage`, a JSON string holding `classId`,
`objectId`, `eventType` ("save" or "del"), `nonce` and `expTimeMillis`.

A message is believed when, in this order: one of Google's unexpired ECv2SigningOnly root
keys signed the intermediate key; the intermediate key has not expired; the intermediate
key signed the message for this recipient (the merchant's issuer id); and the message's
`expTimeMillis` is still ahead. Signatures are ECDSA over P-256 with SHA-256, DER-encoded
and base64; keys are base64 DER SubjectPublicKeyInfo. What is signed is a sequence of
UTF-8 strings, each preceded by its byte length as 4 bytes little-endian:
the sender id ("GooglePayPasses"), [the recipient id,] the protocol version, and the
signed key or the signed message.

Pure: no I/O. The root keys come from `wallet.google.rootkeys`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wallet import errors

SENDER_ID = "GooglePayPasses"
PROTOCOL = "ECv2SigningOnly"
EVENT_TYPES = ("save", "del")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

EventType = Literal["save", "del"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RootKey:
    key: ec.EllipticCurvePublicKey
    # None: the key list gave no expiry.
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackEvent:
    class_id: str
    object_id: str
    event_type: EventType
    nonce: str
    expires_at: dt.datetime


def signed_bytes(*parts: str) -> bytes:
    """The bytes a signature covers: each part's UTF-8 length (4 bytes, little-endian), then
    the part."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "little") + raw
    return bytes(out)


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise errors.SignatureInvalid(f"{what} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise errors.SignatureInvalid(f"{what} is not base64 text") from None


def public_key(value: object, what: str) -> ec.EllipticCurvePublicKey:
    """A base64 DER SubjectPublicKeyInfo holding a P-256 key."""
    try:
        key = serialization.load_der_public_key(_b64(value, what))
    except ValueError:
        raise errors.SignatureInvalid(f"{what} is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise errors.SignatureInvalid(f"{what} is not a P-256 public key")
    return key


def _millis(value: object, what: str) -> dt.datetime:
    """Milliseconds since the epoch, as Google writes them: a number or a string of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**15:
        raise errors.CallbackMalformed(f"{what} is not a time in milliseconds")
    return EPOCH + dt.timedelta(milliseconds=value)


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _json_object(text: object, what: str) -> dict[str, Any]:
    if not isinstance(text, str | bytes):
        raise errors.CallbackMalformed(f"{what} must be a JSON string")
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise errors.CallbackMalformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise errors.CallbackMalformed(f"{what} must be a JSON object")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    signature: str
    signed_key: str
    key_signatures: tuple[str, ...]
    signed_message: str


def envelope(body: bytes) -> Envelope:
    """The parts of a callback body, or the error that says what is missing."""
    outer = _json_object(body, "the callback body")
    if outer.get("protocolVersion") != PROTOCOL:
        raise errors.CallbackMalformed(f"protocolVersion must be {PROTOCOL!r}")
    message = outer.get("signedMessage")
    if not isinstance(message, str):
        raise errors.CallbackMalformed("signedMessage must be a JSON string")
    intermediate = outer.get("intermediateSigningKey")
    signature = outer.get("signature")
    if not isinstance(intermediate, dict) or not signature:
        raise errors.CallbackUnsigned("the callback carries no signature or no signing key")
    signed_key, signatures = intermediate.get("signedKey"), intermediate.get("signatures")
    if not isinstance(signed_key, str) or not isinstance(signatures, list) or not signatures:
        raise errors.CallbackUnsigned("the intermediate signing key is not signed")
    if not isinstance(signature, str) or not all(isinstance(s, str) for s in signatures):
        raise errors.SignatureInvalid("signatures must be base64 text")
    return Envelope(
        signature=signature,
        signed_key=signed_key,
        key_signatures=tuple(signatures),
        signed_message=message,
    )


def intermediate_key(
    env: Envelope, root_keys: Sequence[RootKey], now: dt.datetime
) -> ec.EllipticCurvePublicKey:
    """The intermediate signing key, once a live root key is found to have signed it and it
    is found unexpired. Raises SignatureInvalid when no root key signed it (the caller may
    fetch the root keys again: Google may have rotated them)."""
    data = signed_bytes(SENDER_ID, PROTOCOL, env.signed_key)
    live = [r.key for r in root_keys if r.expires_at is None or r.expires_at > now]
    signatures = [_b64(s, "an intermediate key signature") for s in env.key_signatures]
    if not any(_verifies(key, sig, data) for key in live for sig in signatures):
        raise errors.SignatureInvalid(
            "no current Google root signing key signed the intermediate signing key"
        )
    fields = _json_object(env.signed_key, "signedKey")
    if _millis(fields.get("keyExpiration"), "keyExpiration") <= now:
        raise errors.SigningKeyExpired("the intermediate signing key has expired")
    return public_key(fields.get("keyValue"), "the intermediate signing key")


def open_message(
    env: Envelope, key: ec.EllipticCurvePublicKey, *, recipient_id: str, now: dt.datetime
) -> CallbackEvent:
    """The event, once `key` is found to have signed it for `recipient_id` and it is found
    unexpired."""
    data = signed_bytes(SENDER_ID, recipient_id, PROTOCOL, env.signed_message)
    if not _verifies(key, _b64(env.signature, "the message signature"), data):
        raise errors.SignatureInvalid(
            "the message signature does not verify for this merchant's issuer id"
        )
    fields = _json_object(env.signed_message, "signedMessage")
    expires_at = _millis(fields.get("expTimeMillis"), "expTimeMillis")
    if expires_at <= now:
        raise errors.CallbackExpired("the callback message has expired (expTimeMillis)")
    texts = {k: fields.get(k) for k in ("classId", "objectId", "eventType", "nonce")}
    for name, value in texts.items():
        if not isinstance(value, str) or not value or len(value) > 500 or "\x00" in value:
            raise errors.CallbackMalformed(f"{name} must be a non-empty string")
    event_type = texts["eventType"]
    if event_type not in EVENT_TYPES:
        raise errors.CallbackMalformed("eventType must be 'save' or 'del'")
    return CallbackEvent(
        class_id=str(texts["classId"]),
        object_id=str(texts["objectId"]),
        event_type="save" if event_type == "save" else "del",
        nonce=str(texts["nonce"]),
        expires_at=expires_at,
    )


def parse_root_keys(text: str | bytes) -> tuple[RootKey, ...]:
    """Google's root key list, `{"keys": [{"keyValue", "protocolVersion", "keyExpiration"}]}`:
    the ECv2SigningOnly keys (keys of other protocols are left out)."""
    try:
        listed = json.loads(text)["keys"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ValueError("a root key list is a JSON object with a 'keys' list") from None
    if not isinstance(listed, list):
        raise ValueError("a root key list is a JSON object with a 'keys' list")
    out = []
    for i, entry in enumerate(listed):
        if not isinstance(entry, dict) or entry.get("protocolVersion") != PROTOCOL:
            continue
        try:
            key = public_key(entry.get("keyValue"), f"keys[{i}].keyValue")
            raw = entry.get("keyExpiration")
            expires = None if raw is None else _millis(raw, f"keys[{i}].keyExpiration")
        except errors.WalletError as exc:
            raise ValueError(exc.message) from None
        out.append(RootKey(key=key, expires_at=expires))
    return tuple(out)
